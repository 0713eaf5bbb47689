package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/fidlog/fidlog/changelog"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
)

// FollowOptions tune Follow. The zero value is usable.
type FollowOptions struct {
	// Mask is an optional record mask (Lustre grammar), intersected with
	// the consumer's own mask by the server.
	Mask string
	// BatchRecords is the most records per message; 0: server default.
	BatchRecords uint32
	// ClearRecords: clear once this many processed records are
	// uncleared; default 1024.
	ClearRecords uint64
	// ClearInterval: clear processed records at least this often (checked
	// at each message, heartbeats included); default 1 s.
	ClearInterval time.Duration
	// MinBackoff and MaxBackoff bound the reconnect delay after the
	// server became unavailable; defaults 100 ms and 5 s.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives reconnect messages; default slog.Default().
	Logger *slog.Logger
	// NoClear: Follow never clears, not even when it returns; the caller
	// clears with Client.Clear once what it handled is durable elsewhere
	// (an exporter clears only what its destinations acknowledged). Each
	// record is still handed once per Follow call.
	NoClear bool
}

func (o *FollowOptions) ensureDefaults() {
	if o.ClearRecords == 0 {
		o.ClearRecords = 1024
	}
	if o.ClearInterval == 0 {
		o.ClearInterval = time.Second
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// follower is the state of one Follow call.
type follower struct {
	c       *Client
	device  string
	user    string // "cl<ID>[-name]", as Clear wants it
	ref     string // as given to Follow
	o       FollowOptions
	handler func([]*changelog.Record) error
	// chain (FollowChain) replaces handler: every record, with the
	// chain's anchor and checkpoints, in stream order.
	chain func([]ChainItem) error
	// strs holds the strings of a message's records (chainItems,
	// records): one allocation a message, not one a string.
	strs      strings.Builder
	processed changelog.Index // every record up to it was handled
	ckSeq     uint64          // the last checkpoint handed (FollowChain)
	cleared   changelog.Index // last clear sent
	lastClear time.Time
}

// Follow consumes the changelog as consumer user ("1", "cl1", "cl1-name" or
// the registered name): it streams from the consumer's own cleared point
// (raw records, decoded here), calls handler with each batch in index
// order, and clears in batches (opts.ClearRecords records or
// opts.ClearInterval) only records the handler succeeded on. It reconnects
// with backoff while the server is unavailable, resuming after the last
// handled record, so each record is handled once per Follow call.
//
// Follow returns handler's error (after clearing what was handled before
// the failing batch, never that batch), the consumer's eviction
// (FAILED_PRECONDITION, reason USER_EVICTED; see IsEvicted), any other
// non-retryable error, or ctx's error when ctx ends (after a final clear).
func (c *Client) Follow(ctx context.Context, device, user string, handler func([]*changelog.Record) error, opts FollowOptions) error {
	opts.ensureDefaults()
	f := &follower{c: c, device: device, ref: user, o: opts, handler: handler}
	return f.follow(ctx)
}

// follow runs the stream until it ends for good: it reconnects with
// backoff while the server is unavailable, and clears what was handled
// before it returns.
func (f *follower) follow(ctx context.Context) error {
	opts := &f.o
	backoff := opts.MinBackoff
	for {
		progressed, err := f.run(ctx)
		if progressed {
			backoff = opts.MinBackoff
		}
		if ctx.Err() != nil {
			f.flush(ctx)
			return ctx.Err()
		}
		var he handlerError
		if errors.As(err, &he) {
			f.flush(ctx)
			return he.err
		}
		if !retryable(err) {
			f.flush(ctx)
			return err
		}
		opts.Logger.Info("changelog_follow_reconnect", "device", f.device, "user", f.ref, "backoff", backoff, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			f.flush(ctx)
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(backoff*2, opts.MaxBackoff)
	}
}

// ChainItem is one element of a chain follow (FollowChain): exactly one of
// a record, a signed checkpoint (just before the record at its Position)
// or the chain's anchor (first on each stream: the hash of the record
// before the first one sent).
type ChainItem struct {
	Record     *changelog.Record
	Checkpoint *changelog.Checkpoint
	Anchor     *changelog.Anchor
	// Raw is the record as the log stores it, the bytes Record was
	// decoded from (changelog.ExportFields.Raw): a slice of the message,
	// not to be modified.
	Raw []byte
}

// ErrUnknownUser: FollowChain's consumer is not registered (deregistered,
// or evicted by the changelog GC).
var ErrUnknownUser = errors.New("client: changelog user not registered")

// RecordsLostError: a chain follow found records purged before it read
// them (the consumer was evicted, or the log purged past its point).
type RecordsLostError struct {
	Device   string
	From, To changelog.Index
}

func (e *RecordsLostError) Error() string {
	return fmt.Sprintf("client: %s: records %d..%d were purged before they were read", e.Device, e.From, e.To)
}

// FollowChain is Follow for a consumer that carries the evidence of the
// hash chain (an exporter writing files an auditor verifies offline): it
// streams every record, whatever the consumer's mask (a chain with gaps
// cannot be verified; opts.Mask is refused), with the chain's anchor first
// on each stream and each signed checkpoint just before the record it
// precedes, and calls handler with them in stream order. It starts after
// the consumer's cleared point and resumes after the last handled record;
// a checkpoint is handed once per call, before the record at its
// Position; one signed after the newest record is handed while the stream
// is idle (within the server's heartbeat interval), before that record
// exists. Records purged before they were read end it with
// *RecordsLostError. The consumer's eviction is not reported by the stream
// (it is read without the consumer, whose mask would filter it): watch
// Users, or expect *RecordsLostError once its records are purged.
func (c *Client) FollowChain(ctx context.Context, device, user string, handler func([]ChainItem) error, opts FollowOptions) error {
	if opts.Mask != "" {
		return errors.New("client: a chain follow cannot filter by mask")
	}
	opts.ensureDefaults()
	f := &follower{c: c, device: device, ref: user, o: opts, chain: handler}
	return f.follow(ctx)
}

// chainItems decodes a chain message's elements, leaving out what was
// handled before (records and checkpoints at or before processed).
// The records of a message are decoded into one array (one allocation,
// not one a record), which stays alive while any of them is kept, and
// their strings into one buffer (changelog.DecodeIntoShared).
func (f *follower) chainItems(msg *changelogv1.ReadResponse) ([]ChainItem, error) {
	raws := msg.GetRawRecords()
	out := make([]ChainItem, 0, len(raws))
	var recs []changelog.Record
	room := 0
	for _, b := range raws {
		room += changelog.StringBytes(b)
	}
	f.strs = strings.Builder{}
	f.strs.Grow(room)
	for i, b := range raws {
		switch changelog.KindOf(b) {
		case changelog.ItemAnchor:
			a, err := changelog.DecodeAnchor(b)
			if err != nil {
				return nil, fmt.Errorf("client: element %d of batch: %w", i, err)
			}
			if a.Index > f.processed {
				return nil, &RecordsLostError{Device: f.device, From: f.processed + 1, To: a.Index}
			}
			out = append(out, ChainItem{Anchor: &a})
		case changelog.ItemCheckpoint:
			ck, err := changelog.DecodeCheckpoint(b)
			if err != nil {
				return nil, fmt.Errorf("client: element %d of batch: %w", i, err)
			}
			// A checkpoint the server sent while idle comes again before
			// its record after a reconnect.
			if ck.Position > f.processed && ck.Seq > f.ckSeq {
				out = append(out, ChainItem{Checkpoint: ck})
				f.ckSeq = ck.Seq
			}
		default:
			if len(recs) == cap(recs) {
				recs = make([]changelog.Record, 0, len(raws)-i)
			}
			recs = recs[:len(recs)+1]
			r := &recs[len(recs)-1]
			if err := changelog.DecodeIntoShared(r, b, &f.strs); err != nil {
				return nil, fmt.Errorf("client: element %d of batch: %w", i, err)
			}
			if r.Index <= f.processed {
				recs = recs[:len(recs)-1] // handled before: its slot is free
				continue
			}
			if r.Index != f.processed+1 {
				return nil, &RecordsLostError{Device: f.device, From: f.processed + 1, To: r.Index - 1}
			}
			out = append(out, ChainItem{Record: r, Raw: b})
			f.processed = r.Index
		}
	}
	return out, nil
}

// records returns a message's records as Records does, but decodes raw
// records into one array and their strings into one buffer
// (changelog.DecodeIntoShared): three allocations a message, not one a
// record and one a string.
func (f *follower) records(msg *changelogv1.ReadResponse) ([]*changelog.Record, error) {
	raws := msg.GetRawRecords()
	if len(raws) == 0 {
		return Records(msg)
	}
	room := 0
	for _, b := range raws {
		room += changelog.StringBytes(b)
	}
	f.strs = strings.Builder{}
	f.strs.Grow(room)
	recs := make([]changelog.Record, len(raws))
	out := make([]*changelog.Record, 0, len(raws))
	for i, b := range raws {
		if k := changelog.KindOf(b); k == changelog.ItemCheckpoint || k == changelog.ItemAnchor {
			continue
		}
		r := &recs[len(out)]
		if err := changelog.DecodeIntoShared(r, b, &f.strs); err != nil {
			return nil, fmt.Errorf("client: record %d of batch: %w", i, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// errStreamEnded: the server closed a follow stream without error.
var errStreamEnded = errors.New("client: follow stream ended")

func retryable(err error) bool {
	if errors.Is(err, errStreamEnded) {
		return true
	}
	return Unavailable(err)
}

// run opens one stream and consumes it until it fails. progressed reports
// whether any message arrived.
func (f *follower) run(ctx context.Context) (progressed bool, err error) {
	if f.user == "" {
		if err := f.resolveUser(ctx); err != nil {
			return false, err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req := &changelogv1.ReadRequest{
		Device: f.device, User: f.user, FromUserPoint: true, Follow: true, Raw: true,
		Mask: f.o.Mask, MaxBatchRecords: f.o.BatchRecords,
	}
	if f.chain != nil {
		// Without the user, whose mask would make the read INVALID;
		// processed starts at the user's cleared point (resolveUser).
		req.User, req.FromUserPoint, req.Chain = "", false, true
	}
	if f.processed > 0 || f.chain != nil {
		req.StartIndex = uint64(f.processed) + 1
	}
	st, err := f.c.Changelog.Read(ctx, req)
	if err != nil {
		return false, err
	}
	for {
		msg, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return progressed, errStreamEnded
		}
		if err != nil {
			return progressed, err
		}
		progressed = true
		if f.chain != nil {
			items, err := f.chainItems(msg)
			if err != nil {
				return progressed, err
			}
			if len(items) > 0 {
				if err := f.chain(items); err != nil {
					return progressed, handlerError{err}
				}
			}
			if err := f.maybeClear(ctx); err != nil {
				return progressed, err
			}
			continue
		}
		if len(msg.GetRawRecords()) > 0 || len(msg.GetRecords()) > 0 {
			recs, err := f.records(msg)
			if err != nil {
				return progressed, err
			}
			// Resuming after a reconnect never hands a record twice.
			for len(recs) > 0 && recs[0].Index <= f.processed {
				recs = recs[1:]
			}
			if len(recs) > 0 {
				if err := f.handler(recs); err != nil {
					return progressed, handlerError{err}
				}
			}
		}
		if n := changelog.Index(msg.GetNextIndex()); n > 0 && n-1 > f.processed {
			f.processed = n - 1
		}
		if err := f.maybeClear(ctx); err != nil {
			return progressed, err
		}
	}
}

// handlerError marks the handler's own error so it is returned as is.
type handlerError struct{ err error }

func (e handlerError) Error() string { return e.err.Error() }
func (e handlerError) Unwrap() error { return e.err }

// resolveUser finds the consumer's "cl<ID>[-name]" form, which Clear needs.
func (f *follower) resolveUser(ctx context.Context) error {
	r, err := f.c.Users(ctx, f.device)
	if err != nil {
		return err
	}
	id, byID := changelog.ParseUserID(f.ref)
	for _, u := range r.GetUsers() {
		if byID && u.GetId() == id || !byID && u.GetName() == f.ref {
			f.user = u.GetDisplayName()
			if f.chain != nil && f.processed == 0 {
				f.processed = changelog.Index(u.GetIndex())
			}
			return nil
		}
	}
	if f.chain != nil {
		// A chain read is not made as the user: say it is unknown here.
		return fmt.Errorf("%w: '%s' on %s", ErrUnknownUser, f.ref, f.device)
	}
	// Let the server say why (unknown or evicted) on the Read.
	if byID {
		f.user = fmt.Sprintf("cl%d", id)
		return nil
	}
	f.user = f.ref
	return nil
}

// maybeClear clears when enough records or time have accumulated.
func (f *follower) maybeClear(ctx context.Context) error {
	if f.o.NoClear {
		return nil
	}
	if f.processed <= f.cleared {
		f.lastClear = time.Now()
		return nil
	}
	if uint64(f.processed-f.cleared) < f.o.ClearRecords && time.Since(f.lastClear) < f.o.ClearInterval {
		return nil
	}
	return f.clear(ctx)
}

func (f *follower) clear(ctx context.Context) error {
	to := f.processed
	if _, err := f.c.Clear(ctx, f.device, f.user, to); err != nil {
		return err
	}
	f.cleared, f.lastClear = to, time.Now()
	return nil
}

// flush clears what was handled but not yet cleared, even after ctx ended.
func (f *follower) flush(ctx context.Context) {
	if f.o.NoClear || f.processed <= f.cleared || f.user == "" {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := f.clear(cctx); err != nil {
		f.o.Logger.Warn("changelog_follow_clear_failed", "device", f.device, "user", f.user, "index", uint64(f.processed), "err", err)
	}
}
