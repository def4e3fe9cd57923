package httpapi

import (
	"context"
	"net/http"
)

var bodyStatusOK = []byte(`{"status":"ok"}`)

// healthz says the process serves requests; it never consults the database
// so that a database outage does not get the process restarted.
func (s *Server) healthz(context.Context, *http.Request, *call) (int, []byte, error) {
	return http.StatusOK, bodyStatusOK, nil
}

// readyz says whether this process can serve API requests now, which needs
// the database.
func (s *Server) readyz(ctx context.Context, _ *http.Request, _ *call) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		// Whatever the cause, the answer to "ready?" is no: 503, not 500.
		s.outage.Failed(ctx, err)
		return http.StatusServiceUnavailable, bodyUnavailable, nil
	}
	s.outage.Succeeded(ctx)
	return http.StatusOK, bodyStatusOK, nil
}
