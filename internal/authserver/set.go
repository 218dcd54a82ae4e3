package authserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/openxaa/xaa/internal/audit"
	"github.com/openxaa/xaa/internal/httpserver"
	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/secevent"
	"github.com/openxaa/xaa/internal/store"
)

// NamespaceSET is the Replay namespace of received Security Event Token
// jtis, per issuer.
const NamespaceSET = "set"

// maxNotBeforeAhead is how far ahead of this server's clock a SET's
// not_before may be: the JWT leeway. A fence far in the future would lock
// a user or an app out of every token to come.
const maxNotBeforeAhead = jose.DefaultLeeway

// setError is a refused SET: RFC 8935 §2.3's 400 with {"err",
// "description"}. Nothing was written.
type setError struct {
	code string
	desc string
	err  error // for the log; never sent
}

func (e *setError) Error() string { return e.code + ": " + e.desc }

func badSET(code, desc string, cause error) *setError {
	return &setError{code: code, desc: desc, err: cause}
}

// handleSET is POST /set: push delivery of Security Event Tokens (RFC
// 8935) from a trusted identity provider. The body is one SET
// (Content-Type application/secevent+jwt). It is verified as strictly as
// an ID-JAG, against the same trusted issuers and keys; its one
// AccessRevoked event becomes a not-before fence, raised in one
// transaction with the jti's replay row and the audit record. 202 means
// the fence stands; 400 {"err","description"} means the SET was refused
// and nothing was written; 503 means try again. A SET whose jti was
// already received is acknowledged again (202) without any effect: the
// transmitter retries when an acknowledgement is lost, and the fence it
// asks for already stands.
func (s *Server) handleSET(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	raw, serr := readSET(r)
	if serr == nil {
		serr = s.receiveSET(r.Context(), raw, s.now())
	}
	var se *setError
	switch {
	case serr == nil:
		w.WriteHeader(http.StatusAccepted)
	case errors.As(serr, &se):
		s.log.InfoContext(r.Context(), "security event token refused", "err", se.code, "reason", se.desc, "cause", se.err)
		if err := httpserver.WriteJSON(w, http.StatusBadRequest, secevent.DeliveryError{Err: se.code, Description: se.desc}); err != nil {
			s.log.ErrorContext(r.Context(), "write SET error", "err", err)
		}
	default:
		s.log.ErrorContext(r.Context(), "security event token not processed", "err", serr)
		w.Header().Set("Retry-After", retryAfterSeconds)
		_ = httpserver.WriteJSON(w, http.StatusServiceUnavailable, secevent.DeliveryError{
			Err: "temporarily_unavailable", Description: "the security event could not be processed; retry later"})
	}
}

// readSET reads the body of a push request: exactly the SET, at most as
// large as jose accepts.
func readSET(r *http.Request) (string, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != secevent.ContentType {
		return "", badSET(secevent.ErrCodeInvalidRequest, "the body must be a security event token with Content-Type "+secevent.ContentType, err)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, jose.DefaultMaxSize+1))
	if err != nil {
		return "", badSET(secevent.ErrCodeInvalidRequest, "the body could not be read", err)
	}
	if len(body) > jose.DefaultMaxSize {
		return "", badSET(secevent.ErrCodeInvalidRequest, fmt.Sprintf("the security event token is larger than %d bytes", jose.DefaultMaxSize), nil)
	}
	return string(body), nil
}

// receiveSET verifies raw and raises its fence. It returns nil (202), a
// *setError (400, nothing written) or another error (503).
func (s *Server) receiveSET(ctx context.Context, raw string, now time.Time) error {
	tok, err := jose.Verify(ctx, raw, jose.SETProfile(), s.trust, jose.Expectations{Audiences: []string{s.cfg.Issuer}, Now: now})
	if err != nil {
		return setVerifyError(err)
	}
	ti, err := s.trust.lookup(ctx, tok.Issuer)
	switch {
	case err != nil:
		return fmt.Errorf("authserver: trusted issuers: %w", err)
	case ti == nil: // disabled since Verify looked it up
		return badSET(secevent.ErrCodeInvalidIssuer, "the issuer is not trusted here", nil)
	}
	ev, err := secevent.Parse(tok)
	if err != nil {
		return badSET(secevent.ErrCodeInvalidRequest, "the security event token does not carry one valid "+secevent.EventAccessRevoked+" event", err)
	}
	nb := time.Unix(ev.NotBefore, 0).UTC()
	if nb.After(now.Add(maxNotBeforeAhead)) {
		return badSET(secevent.ErrCodeInvalidRequest, "the event's not_before is in the future", nil)
	}

	// The local subject, exactly as the jwt-bearer grant maps it.
	var local string
	if ev.Subject != nil {
		local, err = ti.subjects(ctx, tok.Issuer, ev.Subject.Sub)
		switch {
		case errors.Is(err, ErrUnknownSubject):
			// The subject cannot hold tokens here; there is nothing
			// to fence, and the SET is acknowledged below all the same.
			local = ""
		case err != nil:
			return fmt.Errorf("authserver: resolve subject: %w", err)
		case local == "":
			return errors.New("authserver: subject mapping returned an empty subject")
		}
	}
	reason := ev.Reason()
	if reason == "" {
		reason = "security event from " + tok.Issuer
	}
	req := FenceRequest{
		ClientID:  ev.ClientID,
		Subject:   local,
		Reason:    reason,
		Actor:     "secevent:" + tok.Issuer,
		Now:       now,
		NotBefore: nb,
	}
	extra := map[string]string{
		"set_iss":          tok.Issuer,
		"set_jti":          audit.Clip(tok.ID),
		"event_not_before": strconv.FormatInt(ev.NotBefore, 10),
	}
	if ev.ConnectionID != "" {
		extra["connection_id"] = ev.ConnectionID
	}
	if ev.Subject != nil {
		extra["idp_sub"] = audit.Clip(ev.Subject.Sub)
	}
	skip := ev.Subject != nil && local == ""
	var f store.Fence
	if !skip {
		if f, err = newFence(s.cfg.Issuer, req); err != nil {
			return badSET(secevent.ErrCodeInvalidRequest, "the event cannot become a fence here", err)
		}
	}
	errSeen := errors.New("jti already received")
	err = s.cfg.Store.InTx(ctx, func(tx store.Tx) error {
		err := tx.RecordOnce(ctx, store.ReplayEntry{Namespace: NamespaceSET, Issuer: tok.Issuer, JTI: tok.ID,
			ExpiresAt: tok.Expiry.Add(jose.DefaultLeeway)})
		switch {
		case errors.Is(err, store.ErrReplay):
			return errSeen
		case err != nil:
			return err
		}
		if skip {
			return tx.AppendAudit(ctx, &store.AuditEvent{
				Time: now, Type: AuditFenceRaised, Actor: req.Actor, ClientID: req.ClientID, Outcome: "info",
				Rule: ruleFenceSkipped, Reason: "the event's subject is not known here; nothing to fence",
				RequestID: httpserver.RequestIDFrom(ctx), Data: extra,
			})
		}
		_, _, err = writeFence(ctx, tx, f, req, extra)
		return err
	})
	switch {
	case errors.Is(err, errSeen):
		return nil
	case errors.Is(err, store.ErrInvalid):
		return badSET(secevent.ErrCodeInvalidRequest, "the event cannot become a fence here", err)
	case err != nil:
		return fmt.Errorf("authserver: raise fence from a security event: %w", err)
	}
	return nil
}

// ruleFenceSkipped: a security event named a subject this server's
// subject mapping refuses, so there was nothing to fence.
const ruleFenceSkipped = "fence.subject_unknown"

// setVerifyError maps a jose.Verify failure to RFC 8935 §2.3's codes.
func setVerifyError(err error) error {
	switch {
	case errors.Is(err, jose.ErrUnknownIssuer), errors.Is(err, jose.ErrIssuer):
		return badSET(secevent.ErrCodeInvalidIssuer, "the issuer is not trusted here", err)
	case errors.Is(err, jose.ErrUnknownKey), errors.Is(err, jose.ErrAlgorithm):
		return badSET(secevent.ErrCodeInvalidKey, "the signing key or algorithm is not acceptable for this issuer", err)
	case errors.Is(err, jose.ErrSignature):
		return badSET(secevent.ErrCodeAuthenticationFailed, "the signature does not verify", err)
	case errors.Is(err, jose.ErrAudience):
		return badSET(secevent.ErrCodeInvalidAudience, "the security event token is not addressed to this authorization server", err)
	case jose.IsRejection(err):
		return badSET(secevent.ErrCodeInvalidRequest, "the security event token is malformed, of another type, or not fresh", err)
	default:
		return fmt.Errorf("authserver: verify security event token: %w", err)
	}
}
