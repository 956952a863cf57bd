package serve

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"google.golang.org/grpc/codes"
)

// apiError is an error with the HTTP status and gRPC code it is answered
// with; its message goes to the client.
type apiError struct {
	status int
	code   codes.Code
	reason string // the failure label of nv_inference_request_failure
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &apiError{http.StatusBadRequest, codes.InvalidArgument, "REJECTED", fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &apiError{http.StatusNotFound, codes.NotFound, "REJECTED", fmt.Sprintf(format, args...)}
}

func methodNotAllowed(format string, args ...any) error {
	return &apiError{http.StatusMethodNotAllowed, codes.Unimplemented, "REJECTED", fmt.Sprintf(format, args...)}
}

func unavailable(format string, args ...any) error {
	return &apiError{http.StatusServiceUnavailable, codes.Unavailable, "REJECTED", fmt.Sprintf(format, args...)}
}

func tooLarge(format string, args ...any) error {
	return &apiError{http.StatusRequestEntityTooLarge, codes.ResourceExhausted, "REJECTED", fmt.Sprintf(format, args...)}
}

// errOverloaded refuses a request at admission: the queue is full or the
// request's deadline cannot be met.
func overloaded(format string, args ...any) error {
	return &apiError{http.StatusTooManyRequests, codes.ResourceExhausted, "OVERLOADED", fmt.Sprintf(format, args...)}
}

func internal(format string, args ...any) error {
	return &apiError{http.StatusInternalServerError, codes.Internal, "BACKEND", fmt.Sprintf(format, args...)}
}

// clip returns a client's string for an error message: whole up to 80
// bytes, else its first 80 and its length. A name is at most 128 bytes
// (checkName), but a request may send megabytes in its place, which a
// gRPC status carries in its trailers (20 MB broke the connection, and
// every other call on it).
func clip(s string) string {
	if len(s) <= 80 {
		return s
	}
	return fmt.Sprintf("%s… (%d bytes)", s[:80], len(s))
}

// counted wraps an error that Server.infer has already counted in its
// model's nv_inference_request_failure, so that the handler does not count
// it again (countFailure).
type counted struct{ error }

func (c counted) Unwrap() error { return c.error }

// countFailure counts a failed inference request in its model's
// nv_inference_request_failure, by reason, unless Server.infer did: a
// request refused before it reached the model (malformed JSON, a bad
// datatype, an undecodable image) fails as much as one refused by it. A
// request for a model that is not served is counted nowhere (there is no
// model to label it with, as in Triton).
func (s *Server) countFailure(name, version string, err error) {
	if err == nil || errors.As(err, new(counted)) {
		return
	}
	if m, lerr := s.lookup(name, version); lerr == nil {
		m.metrics.fail(classify(err).reason)
	}
}

// classify maps any error to an apiError: context errors become 504/499
// (DeadlineExceeded/Canceled), unknown errors 500.
func classify(err error) *apiError {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, context.DeadlineExceeded):
		return &apiError{http.StatusGatewayTimeout, codes.DeadlineExceeded, "TIMEOUT", "deadline exceeded: " + err.Error()}
	case errors.Is(err, context.Canceled):
		// 499 is nginx's "client closed request"; the client is gone anyway.
		return &apiError{499, codes.Canceled, "CANCELED", "request canceled: " + err.Error()}
	}
	return &apiError{http.StatusInternalServerError, codes.Internal, "BACKEND", err.Error()}
}
