package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/jstp-peer/jstp-peer/node"
)

// accessFileName is where up looks for access rules when --access is not
// given.
const accessFileName = "access.json"

// maxAccessFile bounds the rules file read.
const maxAccessFile = 1 << 20

// accessPollEvery is how often up looks at the rules file for changes;
// SIGHUP reloads at once.
const accessPollEvery = 2 * time.Second

// accessPath is the rules file up uses: --access, else DATA-DIR/access.json
// when it exists ("" when there is none).
func accessPath(s *settings, dataDir string) string {
	if p := s.String(keyAccess); p != "" {
		return p
	}
	p := filepath.Join(dataDir, accessFileName)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return ""
}

// loadAccess reads and parses a rules file.
func loadAccess(path string) (*node.AccessRules, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxAccessFile+1))
	if err != nil {
		return nil, nil, err
	}
	if len(data) > maxAccessFile {
		return nil, nil, fmt.Errorf("%s: larger than %d bytes", path, maxAccessFile)
	}
	rules, err := node.ParseAccessRules(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return rules, fi, nil
}

// accessWatcher reloads a peer's rules when the file changes or on
// SIGHUP. A file that no longer parses leaves the rules as they were (and
// says so); a file removed drops them.
type accessWatcher struct {
	path string
	n    *node.Node
	log  *slog.Logger
	last os.FileInfo
	stop context.CancelFunc
	wg   sync.WaitGroup
}

func watchAccess(path string, n *node.Node, last os.FileInfo, log *slog.Logger) *accessWatcher {
	ctx, cancel := context.WithCancel(context.Background())
	w := &accessWatcher{path: path, n: n, log: log, last: last, stop: cancel}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	w.wg.Go(func() {
		defer signal.Stop(hup)
		t := time.NewTicker(accessPollEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				w.reload(true)
			case <-t.C:
				w.reload(false)
			}
		}
	})
	return w
}

func (w *accessWatcher) reload(force bool) {
	fi, err := os.Stat(w.path)
	if errors.Is(err, fs.ErrNotExist) {
		if w.last != nil {
			w.n.SetAccessRules(nil)
			w.last = nil
			w.log.Warn("access rules file removed: every dispatch is allowed", "file", w.path)
		}
		return
	}
	if err == nil && !force && w.last != nil && fi.ModTime().Equal(w.last.ModTime()) && fi.Size() == w.last.Size() {
		return
	}
	rules, fi, err := loadAccess(w.path)
	if err != nil {
		w.log.Warn("access rules not reloaded; the previous ones stay", "err", err)
		if fi2, statErr := os.Stat(w.path); statErr == nil {
			w.last = fi2 // do not retry the same broken file every poll
		}
		return
	}
	w.n.SetAccessRules(rules)
	w.last = fi
	w.log.Info("access rules reloaded", "file", w.path)
}

// Close stops watching and waits.
func (w *accessWatcher) Close() {
	w.stop()
	w.wg.Wait()
}
