package server

// SetProduceQueuedHook sets produceQueuedHook for streams started from now
// on; the returned function restores the previous hook.
func SetProduceQueuedHook(h func()) (restore func()) {
	old := produceQueuedHook
	produceQueuedHook = h
	return func() { produceQueuedHook = old }
}
