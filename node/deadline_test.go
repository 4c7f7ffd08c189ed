package node

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

type ctxKey struct{}

func TestLazyDeadlineEndsAtItsDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		parent := context.WithValue(context.Background(), ctxKey{}, "v")
		c := withLazyDeadline(parent, time.Now().Add(time.Second))
		defer c.cancel()
		if c.Value(ctxKey{}) != "v" {
			t.Fatal("value of the parent not found")
		}
		if dl, ok := c.Deadline(); !ok || !dl.Equal(time.Now().Add(time.Second)) {
			t.Fatalf("deadline %v %v", dl, ok)
		}
		if err := c.Err(); err != nil {
			t.Fatalf("err before the deadline: %v", err)
		}
		derived, stop := context.WithCancel(c)
		defer stop()
		fired := make(chan struct{})
		context.AfterFunc(c, func() { close(fired) })
		<-c.Done()
		if !errors.Is(c.Err(), context.DeadlineExceeded) {
			t.Fatalf("err after the deadline: %v", c.Err())
		}
		<-derived.Done()
		<-fired
		if !errors.Is(context.Cause(c), context.DeadlineExceeded) {
			t.Fatalf("cause %v", context.Cause(c))
		}
	})
}

// Err turns non-nil only with Done closed, even when nobody asked for Done
// before the deadline passed.
func TestLazyDeadlineErrClosesDone(t *testing.T) {
	c := withLazyDeadline(context.Background(), time.Now().Add(-time.Second))
	if !errors.Is(c.Err(), context.DeadlineExceeded) {
		t.Fatalf("err %v", c.Err())
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Err is set but Done is open")
	}
}

func TestLazyDeadlineFollowsParentAndCancel(t *testing.T) {
	parent, cancelParent := context.WithCancel(context.Background())
	c := withLazyDeadline(parent, time.Now().Add(time.Hour))
	done := c.Done()
	cancelParent()
	<-done
	if !errors.Is(c.Err(), context.Canceled) {
		t.Fatalf("err after the parent ended: %v", c.Err())
	}

	// cancel before anyone looked: Done and Err still agree.
	c = withLazyDeadline(context.Background(), time.Now().Add(time.Hour))
	c.cancel()
	if !errors.Is(c.Err(), context.Canceled) {
		t.Fatalf("err after cancel: %v", c.Err())
	}
	<-c.Done()

	// A parent's earlier deadline wins.
	parent, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()
	want, _ := parent.Deadline()
	if dl, _ := withLazyDeadline(parent, time.Now().Add(time.Hour)).Deadline(); !dl.Equal(want) {
		t.Fatalf("deadline %v, want the parent's %v", dl, want)
	}
}
