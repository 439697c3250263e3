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

// Every method of log.v1.Internal takes the node check (admitNode), and no
// method of log.v1.Log does.
func TestInternalMethodsNeedANode(t *testing.T) {
	for _, m := range logv1.Internal_ServiceDesc.Methods {
		if name := "/" + logv1.Internal_ServiceDesc.ServiceName + "/" + m.MethodName; !isInternal(name) {
			t.Errorf("%s does not take the node check", name)
		}
	}
	if len(logv1.Internal_ServiceDesc.Streams) != 0 {
		t.Error("log.v1.Internal has streams: check their admission")
	}
	for name := range methodACLs {
		if isInternal(name) {
			t.Errorf("%s takes the node check", name)
		}
	}
}
