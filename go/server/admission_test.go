package server

import (
	"testing"

	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// Every method of log.v1.Log is authorized when its headers arrive, before
// its message is read: none is missing from methodACLs (GetBounds was,
// and its refusals were decoded and counted as ordinary calls).
func TestEveryMethodHasAnAction(t *testing.T) {
	var names []string
	for _, m := range logv1.Log_ServiceDesc.Methods {
		names = append(names, m.MethodName)
	}
	for _, s := range logv1.Log_ServiceDesc.Streams {
		names = append(names, s.StreamName)
	}
	for _, n := range names {
		if _, ok := methodACLs["/"+logv1.Log_ServiceDesc.ServiceName+"/"+n]; !ok {
			t.Errorf("log.v1.Log/%s has no ACL check in methodACLs", n)
		}
	}
}
