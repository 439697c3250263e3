// Package segment implements the on-disk building blocks of the proglog
// commit log: the store file, the index file and the segment that pairs them.
package segment
