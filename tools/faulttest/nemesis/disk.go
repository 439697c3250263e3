package nemesis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/proglog/proglog/tools/faulttest/cluster"
)

// A damager changes one segment file of a node that is down and says what
// it did.
type damager func(env *Env, path string) (string, error)

// segmentDirs returns the directories of the node's partition logs: every
// directory named segments (a replica's Raft log, which holds its records)
// under DataDir/topics that holds segment store files. (data, a data log,
// existed before issue 17's one-copy change; a directory set aside, such
// as data.corrupt.*, is not a log.) The
// metadata group's Raft log (DataDir/meta) is left alone: a node whose
// metadata log lost its tail refuses the metadata leader's connections
// (see README.md, Limits).
func segmentDirs(dataDir string) ([]string, error) {
	var dirs []string
	err := filepath.WalkDir(filepath.Join(dataDir, "topics"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".store") {
			return err
		}
		dir := filepath.Dir(path)
		if base := filepath.Base(dir); (base == "segments" || base == "data") && !slices.Contains(dirs, dir) {
			dirs = append(dirs, dir)
		}
		return nil
	})
	if err == nil && len(dirs) == 0 {
		err = fmt.Errorf("no segment under %s", dataDir)
	}
	return dirs, err
}

// newestStore returns the newest segment store file under dir.
func newestStore(dir string) (string, error) {
	stores, err := filepath.Glob(filepath.Join(dir, "*.store"))
	if err != nil || len(stores) == 0 {
		return "", fmt.Errorf("no segment in %s (%v)", dir, err)
	}
	slices.Sort(stores) // zero-padded base offsets
	return stores[len(stores)-1], nil
}

func truncateTail(env *Env, path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	const header = 24 // keep the store header: a torn tail, not a lost file
	if fi.Size() <= header {
		return "", fmt.Errorf("%s holds no record", path)
	}
	cut := 1 + env.Rng.Int64N(min(fi.Size()-header, 4096))
	if err := os.Truncate(path, fi.Size()-cut); err != nil {
		return "", err
	}
	return fmt.Sprintf("cut the last %d of %d bytes of %s", cut, fi.Size(), path), nil
}

func flipBit(env *Env, path string) (string, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return "", fmt.Errorf("stat %s: size %d, %v", path, fi.Size(), err)
	}
	pos := env.Rng.Int64N(fi.Size())
	bit := byte(1) << env.Rng.IntN(8)
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, pos); err != nil {
		return "", err
	}
	b[0] ^= bit
	if _, err := f.WriteAt(b, pos); err != nil {
		return "", err
	}
	return fmt.Sprintf("flipped bit %d of byte %d of %d in %s", bitIndex(bit), pos, fi.Size(), path), f.Sync()
}

func bitIndex(b byte) int {
	for i := range 8 {
		if b == 1<<i {
			return i
		}
	}
	return -1
}

// damage kills a follower, damages the newest segment of one of its
// partition replicas' Raft logs and restarts it. A node must either repair
// itself (a torn tail is cut and re-replicated) or refuse the log with an
// error naming the corruption (the node exits, or its broker refuses to
// open the replica), in which case it is replaced as an operator would
// (fresh node, empty disk). Either way no
// acknowledged record may be lost: the checker decides.
func damage(d damager) func(context.Context, *Env, *Event) error {
	return func(ctx context.Context, env *Env, ev *Event) error {
		n, err := strike(ctx, env, ev, follower, (*cluster.Node).Kill)
		if err != nil {
			return err
		}
		dirs, err := segmentDirs(n.DataDir)
		if err != nil {
			return err
		}
		path, err := newestStore(dirs[env.Rng.IntN(len(dirs))])
		if err != nil {
			return err
		}
		if ev.Detail, err = d(env, path); err != nil {
			return err
		}
		ev.Detail = strings.Replace(ev.Detail, n.DataDir+string(filepath.Separator), n.Name+":", 1)
		if err := sleep(ctx, env.Hold); err != nil {
			return err
		}
		ev.Healed = time.Now()
		logBefore := logSize(n)
		if err := n.Restart(); err != nil {
			return err
		}
		// A node that refuses its disk exits within moments of starting;
		// one that refuses a partition replica's log (a corrupt Raft log,
		// or a data log a snapshot needs) stays up, its broker retrying
		// to open the replica, which cannot succeed.
		exitErr, exited := n.WaitExit(3 * time.Second)
		if !exited && lastLine(n, logBefore, "opening partition replica failed") != "" {
			if err := n.Kill(); err != nil {
				return err
			}
			exitErr, exited = errors.New("a replica refused"), true
		}
		if exited {
			why := lastLine(n, logBefore, "corrupt")
			old := n.Name
			if err := env.Cluster.Replace(ctx, n); err != nil {
				return fmt.Errorf("%s refused to start (%v: %s) and could not be replaced: %w", old, exitErr, why, err)
			}
			ev.Outcome = fmt.Sprintf("%s refused its log (%s); replaced by %s with an empty disk", old, why, n.Name)
			return nil
		}
		if why := lastLine(n, logBefore, "corrupt"); why != "" {
			ev.Outcome = "repaired itself: " + why
		} else {
			ev.Outcome = "restarted (damage within the torn-tail rule: cut, re-replicated)"
		}
		return nil
	}
}

func logSize(n *cluster.Node) int64 {
	fi, err := os.Stat(n.LogPath())
	if err != nil {
		return 0
	}
	return fi.Size()
}

// lastLine returns the last line containing word that n wrote since offset
// from of its log, shortened.
func lastLine(n *cluster.Node, from int64, word string) string {
	b, err := os.ReadFile(n.LogPath())
	if err != nil || int64(len(b)) < from {
		return ""
	}
	var found string
	for _, l := range strings.Split(string(b[from:]), "\n") {
		if strings.Contains(strings.ToLower(l), word) {
			found = l
		}
	}
	// Node logs are JSON lines (zap): keep the message and the error.
	var entry struct{ Msg, Error string }
	if json.Unmarshal([]byte(found), &entry) == nil && entry.Msg != "" {
		found = entry.Msg
		if entry.Error != "" {
			found += ": " + entry.Error
		}
	}
	found = strings.ReplaceAll(found, n.DataDir+string(filepath.Separator), n.Name+":")
	if r := []rune(found); len(r) > 240 {
		found = string(r[:240]) + "…"
	}
	return found
}

// loseDisks is the checker's negative control: data acknowledged by a
// majority is destroyed with that majority's disks. One follower is cut
// off (partitioned, or paused where partitions are unavailable) while the
// others acknowledge records; then those others are killed, their data
// directories wiped, and they are restarted empty; the survivor comes back
// and, holding the only copy left, leads a cluster that lacks every record
// acknowledged while it was away.
func loseDisks(ctx context.Context, env *Env, ev *Event) error {
	survivor, err := follower(ctx, env)
	if err != nil {
		return err
	}
	others := without(env.Cluster.Members(), survivor)
	ev.Targets = names(others)
	ev.Injected = time.Now()
	var heal func() error
	if env.Lab.CanPartition() {
		if err := env.Lab.Partition([]int{survivor.Slot}, slots(others)); err != nil {
			return err
		}
		heal = env.Lab.Heal
	} else {
		if err := survivor.Pause(); err != nil {
			return err
		}
		heal = survivor.Resume
	}
	if err := sleep(ctx, env.Hold); err != nil {
		return errors.Join(err, heal())
	}
	for _, n := range others {
		if err := n.Kill(); err != nil {
			return errors.Join(err, heal())
		}
		if err := n.Wipe(); err != nil {
			return errors.Join(err, heal())
		}
	}
	if err := heal(); err != nil {
		return err
	}
	for _, n := range others {
		if err := n.Restart(); err != nil {
			return err
		}
	}
	ev.Healed = time.Now()
	ev.Detail = fmt.Sprintf("%s cut off for %v while %s acknowledged records; then %s killed, data directories wiped, restarted empty",
		survivor.Name, env.Hold, strings.Join(names(others), ","), strings.Join(names(others), ","))
	return nil
}
