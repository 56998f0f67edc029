package s3

import "net/http"

// WithTransport returns s whose requests go through rt.
func WithTransport(s Settings, rt http.RoundTripper) Settings {
	s.transport = rt
	return s
}
