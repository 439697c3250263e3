// Command pause is the sandbox ("pause") container of //k8s/node:node_test's throw-away node:
// the process that holds a pod's namespaces while its containers come and go. It waits for
// SIGINT or SIGTERM and exits 0, and reaps the children it inherits as PID 1 of the pod's PID
// namespace. It exists because the node runs offline and cannot pull registry.k8s.io/pause.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		reap()
	}
}

// reap collects every child that has exited, without blocking.
func reap() {
	for {
		pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
