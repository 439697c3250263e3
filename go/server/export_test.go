package server

// Unmarshalled returns the number of requests s's codec has unmarshalled.
func Unmarshalled(s *Server) int64 { return s.codec.unmarshalled.Load() }

// SetProduceQueuedHook sets produceQueuedHook for streams started from now
// on; the returned function restores the previous hook.
func SetProduceQueuedHook(h func()) (restore func()) {
	old := produceQueuedHook
	produceQueuedHook = h
	return func() { produceQueuedHook = old }
}
