package server

// Unmarshalled returns the number of requests s's codec has unmarshalled.
func Unmarshalled(s *Server) int64 { return s.codec.unmarshalled.Load() }
