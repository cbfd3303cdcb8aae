// Package filters is polyingress's Traefik middleware for the Gateway API filters that Traefik's
// own file-provider middlewares cannot state exactly (plugins/traefik/filters.py says which and
// why). Traefik loads it as a local plugin (Yaegi) from <workdir>/plugins-local; the renderer
// writes one instance per distinct filter set. It answers by itself (a redirect, a share of
// 500s) or changes the request and the response on their way through, nothing else: the
// routing stays in Traefik's routers.
//
// The semantics are the core's (polyingress.core RouteModel.answer, HeaderFilter.apply,
// PathModifier.apply, redirect_location); every field is computed by the renderer from the
// route model, so this code decides nothing the model does not say.
package filters

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Header is one header name (lowercase) and value.
type Header struct {
	Name  string
	Value string
}

// Headers are the changes of a HeaderModifier, applied in this order: set, add, remove.
type Headers struct {
	Set    []Header
	Add    []Header
	Remove []string
}

// PathChange replaces the whole path ("full") or the matched prefix ("prefix": Prefix, the
// route's path, is replaced by Value).
type PathChange struct {
	Kind   string
	Value  string
	Prefix string
}

// Redirect answers with Status and a Location built from the request: Scheme and PortSuffix
// (":port" or "") are fixed, Hostname replaces the request's host when set, Path its path.
type Redirect struct {
	Status     int
	Scheme     string
	Hostname   string
	PortSuffix string
	Path       *PathChange
}

// Rewrite changes the Host and the path before the request is proxied.
type Rewrite struct {
	Hostname string
	Path     *PathChange
}

// Cors is the CORS filter (polyingress.core Cors): a preflight (OPTIONS with Origin and
// Access-Control-Request-Method) is answered 204; any other request from an allowed Origin
// gets the Origin echoed and its headers, replacing the backend's. OriginRegex is
// Cors.origin_regex; an Echo* flag stands for a wildcard list (the request's value echoed);
// empty strings are headers left out.
type Cors struct {
	OriginRegex  string
	AllowMethods string
	EchoMethod   bool
	AllowHeaders string
	EchoHeaders  bool
	Expose       string
	Credentials  bool
	MaxAge       string
}

// Config is one route row's filters. FailWeight out of FailTotal requests answer 500 (the
// share of an invalid backend reference in a weighted split). TimeoutMs bounds the whole
// request (504); SendTimeoutMs the longest pause in the sending of the request's body to the
// endpoint (sendWatch: 504).
type Config struct {
	RequestHeaders  *Headers
	ResponseHeaders *Headers
	Redirect        *Redirect
	Rewrite         *Rewrite
	FailWeight      int
	FailTotal       int
	TimeoutMs       int
	SendTimeoutMs   int
	Cors            *Cors
}

// CreateConfig is Traefik's hook for the empty configuration.
func CreateConfig() *Config {
	return &Config{}
}

type filters struct {
	next    http.Handler
	cfg     *Config
	origins *regexp.Regexp
}

// New is Traefik's hook: one handler per middleware instance.
func New(_ context.Context, next http.Handler, cfg *Config, _ string) (http.Handler, error) {
	if cfg.Redirect != nil && (cfg.Redirect.Status < 300 || cfg.Redirect.Status > 399) {
		return nil, errors.New("polyingress filters: redirect status must be 3xx")
	}
	if cfg.FailWeight < 0 || cfg.FailTotal < 0 || cfg.FailWeight > cfg.FailTotal {
		return nil, errors.New("polyingress filters: failWeight must be in 0..failTotal")
	}
	if cfg.TimeoutMs < 0 || cfg.SendTimeoutMs < 0 {
		return nil, errors.New("polyingress filters: timeouts must not be negative")
	}
	out := &filters{next: next, cfg: cfg}
	if cfg.Cors != nil {
		origins, err := regexp.Compile(cfg.Cors.OriginRegex)
		if err != nil {
			return nil, errors.New("polyingress filters: bad CORS origin regex")
		}
		out.origins = origins
	}
	return out, nil
}

// corsHeaders are the CORS response headers (Cors.response_headers, and with preflight
// Cors.preflight_headers) for an allowed origin.
func corsHeaders(c *Cors, origin string, req *http.Request, preflight bool) []Header {
	out := []Header{{"Access-Control-Allow-Origin", origin}}
	if c.Credentials {
		out = append(out, Header{"Access-Control-Allow-Credentials", "true"})
	}
	if c.Expose != "" {
		out = append(out, Header{"Access-Control-Expose-Headers", c.Expose})
	}
	if !preflight {
		return out
	}
	methods := c.AllowMethods
	if c.EchoMethod {
		methods = req.Header.Get("Access-Control-Request-Method")
	}
	if methods != "" {
		out = append(out, Header{"Access-Control-Allow-Methods", methods})
	}
	headers := c.AllowHeaders
	if c.EchoHeaders {
		headers = strings.Join(req.Header.Values("Access-Control-Request-Headers"), ",")
	}
	if headers != "" {
		out = append(out, Header{"Access-Control-Allow-Headers", headers})
	}
	return append(out, Header{"Access-Control-Max-Age", c.MaxAge})
}

// cors answers a preflight (true: done), or wraps rw to give an allowed Origin its headers.
func (f *filters) cors(rw http.ResponseWriter, req *http.Request) (http.ResponseWriter, bool) {
	c := f.cfg.Cors
	origin := req.Header.Get("Origin")
	allowed := origin != "" && f.origins.MatchString(origin)
	if req.Method == http.MethodOptions && origin != "" && req.Header.Get("Access-Control-Request-Method") != "" {
		if allowed {
			for _, h := range corsHeaders(c, origin, req, true) {
				rw.Header().Set(h.Name, h.Value)
			}
		}
		rw.WriteHeader(http.StatusNoContent)
		return rw, true
	}
	if !allowed {
		return rw, false
	}
	set := corsHeaders(c, origin, req, false)
	remove := []string{}
	for _, name := range []string{"Access-Control-Allow-Credentials", "Access-Control-Expose-Headers"} {
		found := false
		for _, h := range set {
			found = found || h.Name == name
		}
		if !found {
			remove = append(remove, name)
		}
	}
	return &responseHeaders{ResponseWriter: rw, headers: &Headers{Set: set, Remove: remove}}, false
}

func (f *filters) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	cfg := f.cfg
	if cfg.Cors != nil {
		var done bool
		rw, done = f.cors(rw, req)
		if done {
			return
		}
	}
	if cfg.ResponseHeaders != nil {
		rw = &responseHeaders{ResponseWriter: rw, headers: cfg.ResponseHeaders}
	}
	if cfg.Redirect != nil {
		rw.Header().Set("Location", location(cfg.Redirect, req))
		rw.WriteHeader(cfg.Redirect.Status)
		return
	}
	if cfg.FailTotal > 0 && rand.Intn(cfg.FailTotal) < cfg.FailWeight {
		http.Error(rw, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	if cfg.RequestHeaders != nil {
		modifyRequest(req, cfg.RequestHeaders)
	}
	if cfg.Rewrite != nil {
		if cfg.Rewrite.Hostname != "" {
			req.Host = cfg.Rewrite.Hostname
		}
		if cfg.Rewrite.Path != nil {
			setPath(req, changePath(cfg.Rewrite.Path, req.URL.EscapedPath()))
		}
	}
	if cfg.TimeoutMs > 0 {
		ctx, cancel := context.WithTimeout(req.Context(), time.Duration(cfg.TimeoutMs)*time.Millisecond)
		defer cancel()
		req = req.WithContext(ctx)
	}
	if cfg.SendTimeoutMs > 0 && req.ContentLength != 0 && req.Body != nil {
		ctx, cancel := context.WithCancelCause(req.Context())
		watch := newSendWatch(req.Body, time.Duration(cfg.SendTimeoutMs)*time.Millisecond, cancel)
		defer watch.finish()
		req = req.WithContext(ctx)
		req.Body = watch
	}
	f.next.ServeHTTP(rw, req)
}

// sendWatch is the request body as the transport reads it to send it to the endpoint, and
// nginx's proxy_send_timeout: the clock runs while the transport is not reading (it is
// writing what it read, and the endpoint does not take it), from the first Read's return to
// the end of the body (EOF, an error, Close). A Read in progress waits for the client: that
// is the client's timeout, not this one. When the pause exceeds the limit, the request's
// context is cancelled with the cause context.DeadlineExceeded: the transport drops the
// endpoint's connection and Traefik answers 504, as for a deadline.
type sendWatch struct {
	body   io.ReadCloser
	limit  time.Duration
	cancel context.CancelCauseFunc

	mu      sync.Mutex
	timer   *time.Timer
	last    time.Time // when the last Read returned
	reading bool
	done    bool
}

func newSendWatch(body io.ReadCloser, limit time.Duration, cancel context.CancelCauseFunc) *sendWatch {
	return &sendWatch{body: body, limit: limit, cancel: cancel}
}

func (w *sendWatch) Read(p []byte) (int, error) {
	w.mu.Lock()
	w.reading = true
	w.mu.Unlock()
	n, err := w.body.Read(p)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.reading = false
	if w.done {
		return n, err
	}
	if err != nil {
		w.stop()
		return n, err
	}
	w.last = time.Now()
	if w.timer == nil {
		w.timer = time.AfterFunc(w.limit, w.expire)
	} else {
		w.timer.Reset(w.limit)
	}
	return n, err
}

// expire runs on the timer: it cancels the request when the transport has not read for the
// whole limit (a later Read has re-armed the timer; a Read in progress re-arms it when done).
func (w *sendWatch) expire() {
	w.mu.Lock()
	fire := !w.done && !w.reading && time.Since(w.last) >= w.limit
	if fire {
		w.done = true
	}
	w.mu.Unlock()
	if fire {
		w.cancel(context.DeadlineExceeded)
	}
}

// stop ends the watch (w.mu held).
func (w *sendWatch) stop() {
	w.done = true
	if w.timer != nil {
		w.timer.Stop()
	}
}

func (w *sendWatch) Close() error {
	w.mu.Lock()
	w.stop()
	w.mu.Unlock()
	return w.body.Close()
}

// finish ends the watch once the request is served (the context is then released).
func (w *sendWatch) finish() {
	w.mu.Lock()
	w.stop()
	w.mu.Unlock()
	w.cancel(context.Canceled)
}

// bareHost is the request's host as the core compares it: lowercase, trailing dots and the
// port removed (RouteModel.answer).
func bareHost(host string) string {
	host = strings.TrimRight(strings.ToLower(host), ".")
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		host = host[:strings.LastIndex(host, ":")]
	}
	return host
}

// changePath is PathModifier.apply on the normalized (escaped) request path.
func changePath(change *PathChange, path string) string {
	if change.Kind == "full" {
		return change.Value
	}
	prefix := strings.TrimRight(change.Prefix, "/")
	rest := path
	if prefix != "" && strings.HasPrefix(path, prefix) {
		rest = path[len(prefix):]
	}
	base := strings.TrimRight(change.Value, "/")
	if rest == "" || rest == "/" {
		if base+rest == "" {
			return "/"
		}
		return base + rest
	}
	return base + rest
}

// location is redirect_location: each part the redirect does not set is the request's.
func location(r *Redirect, req *http.Request) string {
	host := r.Hostname
	if host == "" {
		host = bareHost(req.Host)
	}
	path := req.URL.EscapedPath()
	if r.Path != nil {
		path = changePath(r.Path, path)
	}
	target := path
	if req.URL.RawQuery != "" {
		target += "?" + req.URL.RawQuery
	}
	return r.Scheme + "://" + host + r.PortSuffix + target
}

func setPath(req *http.Request, escaped string) {
	plain, err := url.PathUnescape(escaped)
	if err != nil {
		return
	}
	req.URL.Path = plain
	req.URL.RawPath = escaped
	req.RequestURI = req.URL.RequestURI()
}

// modifyRequest is HeaderFilter.apply on the request; an added value joins the ones already
// there with "," (one header line, as a proxy combining them would send).
func modifyRequest(req *http.Request, h *Headers) {
	for _, s := range h.Set {
		if s.Name == "host" {
			req.Host = s.Value
			continue
		}
		req.Header.Set(s.Name, s.Value)
	}
	for _, a := range h.Add {
		appendValue(req.Header, a.Name, a.Value)
	}
	for _, name := range h.Remove {
		req.Header.Del(name)
	}
}

func appendValue(header http.Header, name, value string) {
	old := header.Values(name)
	if len(old) == 0 || strings.EqualFold(name, "set-cookie") {
		header.Add(name, value)
		return
	}
	header.Set(name, strings.Join(old, ",")+","+value)
}

// responseHeaders applies a HeaderModifier to the response once, before its header is sent.
type responseHeaders struct {
	http.ResponseWriter
	headers *Headers
	done    bool
}

func (w *responseHeaders) apply() {
	if w.done {
		return
	}
	w.done = true
	header := w.ResponseWriter.Header()
	for _, s := range w.headers.Set {
		header.Set(s.Name, s.Value)
	}
	for _, a := range w.headers.Add {
		appendValue(header, a.Name, a.Value)
	}
	for _, name := range w.headers.Remove {
		header.Del(name)
	}
}

func (w *responseHeaders) WriteHeader(code int) {
	if code >= 200 {
		w.apply()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseHeaders) Write(b []byte) (int, error) {
	w.apply()
	return w.ResponseWriter.Write(b)
}

func (w *responseHeaders) Flush() {
	w.apply()
	if flusher, ok := w.ResponseWriter.(http.Flusher); ok {
		flusher.Flush()
	}
}

func (w *responseHeaders) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hijacker, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("polyingress filters: the response cannot be hijacked")
	}
	return hijacker.Hijack()
}
