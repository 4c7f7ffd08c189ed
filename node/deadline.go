package node

import (
	"context"
	"sync"
	"time"
)

// lazyDeadline is context.WithDeadline made when first needed, for
// handler calls. Most handlers answer from memory and never look at their
// context's Done or Err; for them a context.WithDeadline would cost a
// timer, four allocations and a registration with the engine's context
// under its lock, which every handler call shares. Deadline and Value
// need none of it; Done, Err and AfterFunc make the real context.
type lazyDeadline struct {
	parent   context.Context
	deadline time.Time

	mu       sync.Mutex
	ctx      context.Context // nil until needed
	cancelFn context.CancelFunc
	canceled bool
}

func withLazyDeadline(parent context.Context, d time.Time) *lazyDeadline {
	if pd, ok := parent.Deadline(); ok && pd.Before(d) {
		d = pd
	}
	return &lazyDeadline{parent: parent, deadline: d}
}

// real returns the context.WithDeadline this stands for, making it.
func (c *lazyDeadline) real() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx == nil {
		c.ctx, c.cancelFn = context.WithDeadline(c.parent, c.deadline)
		if c.canceled {
			c.cancelFn()
		}
	}
	return c.ctx
}

func (c *lazyDeadline) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *lazyDeadline) Done() <-chan struct{} { return c.real().Done() }

// Err asks the real context only once c has ended: until then it is nil,
// which the clock and the parent tell without one.
func (c *lazyDeadline) Err() error {
	c.mu.Lock()
	ctx := c.ctx
	ended := c.canceled || c.parent.Err() != nil || !time.Now().Before(c.deadline)
	c.mu.Unlock()
	if ctx == nil && !ended {
		return nil
	}
	return c.real().Err()
}

func (c *lazyDeadline) Value(key any) any {
	c.mu.Lock()
	ctx := c.ctx
	c.mu.Unlock()
	if ctx != nil {
		return ctx.Value(key) // context.Cause finds the deadline's cause
	}
	return c.parent.Value(key)
}

// AfterFunc lets context.AfterFunc and the contexts derived from c watch
// the real context directly, without a goroutine each: the context
// package looks for this method on contexts it does not know.
func (c *lazyDeadline) AfterFunc(f func()) func() bool {
	return context.AfterFunc(c.real(), f)
}

// cancel is the cancel function of context.WithDeadline.
func (c *lazyDeadline) cancel() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.canceled = true
	if c.cancelFn != nil {
		c.cancelFn()
	}
}
