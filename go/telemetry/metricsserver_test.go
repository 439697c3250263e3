package telemetry

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// scrapeKeepAlive sends one GET /metrics on c and reads the response,
// leaving the connection open (HTTP/1.1 keep-alive).
func scrapeKeepAlive(t *testing.T, c net.Conn, extraHeader string) *http.Response {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n%s\r\n", extraHeader)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// startMetrics serves an empty registry and returns a dialer to it.
func startMetrics(t *testing.T) (dial func() net.Conn) {
	t.Helper()
	srv, err := ListenMetrics("127.0.0.1:0", prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
}

func TestMetricsServerMaxHeaderBytes(t *testing.T) {
	dial := startMetrics(t)
	big := "X-Big: " + strings.Repeat("a", 2*MetricsMaxHeaderBytes) + "\r\n"
	if resp := scrapeKeepAlive(t, dial(), big); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("request with %d bytes of headers: %s, want 431", len(big), resp.Status)
	}
}

// MetricsMaxConns kept-alive scrapers are served; one more is closed.
func TestMetricsServerMaxConns(t *testing.T) {
	dial := startMetrics(t)
	for range MetricsMaxConns {
		if resp := scrapeKeepAlive(t, dial(), ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("scrape: %s", resp.Status)
		}
	}
	// Closed unanswered (a scrape on it would otherwise get its 200).
	over := dial()
	over.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(over, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(over), nil); err == nil {
		resp.Body.Close()
		t.Fatalf("connection over the limit answered %s, want it closed by the server", resp.Status)
	}
}
