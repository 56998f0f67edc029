package s3

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// Settings say how to reach the object storage. Empty fields take the
// usual AWS variables (FromEnv).
type Settings struct {
	// Endpoint is the server's URL (https://s3.example.net,
	// http://127.0.0.1:7070) or host[:port] (then https). Default:
	// AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, else AWS's own
	// (s3.amazonaws.com).
	Endpoint string
	// Region: AWS_REGION, AWS_DEFAULT_REGION, else us-east-1.
	Region string
	// AccessKey, SecretKey, SessionToken: AWS_ACCESS_KEY_ID,
	// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN.
	AccessKey    string
	SecretKey    string
	SessionToken string
	// PathStyle: "true" addresses buckets as endpoint/bucket, "false" as
	// bucket.endpoint, "" lets the client choose (virtual hosts on AWS,
	// paths elsewhere). Default: AWS_S3_FORCE_PATH_STYLE.
	PathStyle string
	// PartSize is the size of each part of a multipart upload; 0: 5 MiB,
	// S3's smallest, so that a soft delete to S3 stays within 64 MiB
	// (issue 13). It doubles every 1000 parts, so that the 10,000 parts
	// S3 allows hold any archive (parts of 5 MiB up to 4.9 GiB, then
	// 10 MiB up to 14.6 GiB, 20 MiB up to 34 GiB...): memory grows with
	// the archive only beyond that.
	PartSize int64
	// Uploads is how many parts are sent at once; 0: 2. Memory of one
	// upload is about (Uploads+1) parts.
	Uploads int

	// transport, when set, carries the requests (tests damage them on
	// the way).
	transport http.RoundTripper
}

// FromEnv fills the empty fields from the environment.
func (s Settings) FromEnv() Settings {
	first := func(v string, names ...string) string {
		if v != "" {
			return v
		}
		for _, n := range names {
			if e := os.Getenv(n); e != "" {
				return e
			}
		}
		return ""
	}
	s.Endpoint = first(s.Endpoint, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
	s.Region = first(s.Region, "AWS_REGION", "AWS_DEFAULT_REGION")
	// The key pair comes from one place: a key given without its secret
	// does not borrow the environment's secret.
	if s.AccessKey == "" && s.SecretKey == "" {
		s.AccessKey, s.SecretKey = os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
		s.SessionToken = first(s.SessionToken, "AWS_SESSION_TOKEN")
	}
	s.PathStyle = first(s.PathStyle, "AWS_S3_FORCE_PATH_STYLE")
	return s
}

// endpoint returns host[:port] and whether to use TLS.
func (s Settings) endpoint() (string, bool, error) {
	e := s.Endpoint
	if e == "" {
		return "s3.amazonaws.com", true, nil
	}
	if !strings.Contains(e, "://") {
		return strings.TrimSuffix(e, "/"), true, nil
	}
	u, err := url.Parse(e)
	if err != nil {
		return "", false, fmt.Errorf("s3 endpoint %q: %w", e, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", false, fmt.Errorf("s3 endpoint %q: the scheme must be http or https", e)
	}
	if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return "", false, fmt.Errorf("s3 endpoint %q: give only scheme, host and port (https://host:port)", e)
	}
	return u.Host, u.Scheme == "https", nil
}

// pathStyle parses PathStyle the way Ansible reads booleans.
func (s Settings) pathStyle() (set, on bool, err error) {
	switch strings.ToLower(strings.TrimSpace(s.PathStyle)) {
	case "":
		return false, false, nil
	case "1", "true", "yes", "on", "y", "t":
		return true, true, nil
	case "0", "false", "no", "off", "n", "f":
		return true, false, nil
	}
	return false, false, fmt.Errorf("s3 path style %q: want true or false", s.PathStyle)
}
