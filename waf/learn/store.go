package learn

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"hedge/internal/tick"
)

// MaxRoutes bounds the routes a store models; routes come from the
// configuration, so only a configuration with more learn routes meets it.
const MaxRoutes = 1024

// File is a saved store: every route's model.
type File struct {
	Version int      `json:"version"`
	Saved   string   `json:"saved"`
	Routes  []*Model `json:"routes"`
}

// Store keeps the models of the routes in learn mode across reloads and
// restarts: it loads its file when opened, writes it every interval and
// when closed (atomically: a reader sees the old file or the new one).
type Store struct {
	path string

	mu     sync.Mutex
	models map[string]*Model

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// Open loads path, when it exists, and saves to it every interval (0: only
// on Close).
func Open(path string, every time.Duration) (*Store, error) {
	s := &Store{path: path, models: map[string]*Model{}, stop: make(chan struct{}), done: make(chan struct{})}
	f, err := ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		for _, m := range f.Routes {
			s.models[m.Route] = m
		}
	}
	if every <= 0 {
		close(s.done)
		return s, nil
	}
	go func() {
		defer close(s.done)
		tick.Every(s.stop, every, func(time.Time) { _ = s.Save() })
	}()
	return s, nil
}

// ReadFile reads a saved store.
func ReadFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if f.Version != 1 {
		// An error answer saved in its place (problem+json) reads as JSON too.
		return nil, fmt.Errorf("%s: not a file of learned models (version %d, want 1)", path, f.Version)
	}
	for _, m := range f.Routes {
		if m == nil || m.Route == "" {
			return nil, fmt.Errorf("%s: a model without a route", path)
		}
		m.repair()
	}
	return &f, nil
}

// repair gives a decoded model the maps Observe writes into.
func (m *Model) repair() {
	if m.Fields == nil {
		m.Fields = map[string]*Field{}
	}
	if m.Params == nil {
		m.Params = map[string]*Field{}
	}
	if m.ContentTypes == nil {
		m.ContentTypes = map[string]int64{}
	}
	for _, fs := range []map[string]*Field{m.Fields, m.Params} {
		for k, f := range fs {
			if f == nil {
				delete(fs, k)
				continue
			}
			if f.Types == nil {
				f.Types = map[string]int64{}
			}
		}
	}
}

// Model is route's model (created on first use); nil past MaxRoutes.
func (s *Store) Model(route string) *Model {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.models[route]
	if m == nil {
		if len(s.models) >= MaxRoutes {
			return nil
		}
		m = NewModel(route)
		s.models[route] = m
	}
	return m
}

// Save writes every model to the store's file, atomically; a store that
// models no route leaves no file.
func (s *Store) Save() error {
	if s.path == "" {
		return nil // in memory only
	}
	b, n, err := s.encode()
	if err != nil || n == 0 {
		return err
	}
	return writeAtomic(s.path, b)
}

// Encode is every model as of now, in the form of the store's file
// (ReadFile reads it): what the admin API serves.
func (s *Store) Encode() ([]byte, error) {
	b, _, err := s.encode()
	return b, err
}

// encode is the store's file and the number of routes in it.
func (s *Store) encode() ([]byte, int, error) {
	s.mu.Lock()
	models := make([]*Model, 0, len(s.models))
	for _, m := range s.models {
		models = append(models, m)
	}
	s.mu.Unlock()
	sort.Slice(models, func(i, j int) bool { return models[i].Route < models[j].Route })
	out := []byte(`{"version":1,"saved":` + fmt.Sprintf("%q", time.Now().UTC().Format(time.RFC3339)) + `,"routes":[`)
	for i, m := range models {
		b, err := m.Snapshot()
		if err != nil {
			return nil, 0, err
		}
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, b...)
	}
	out = append(out, "]}\n"...)
	return out, len(models), nil
}

func writeAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Close stops the periodic save and saves once more (safe to call twice).
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		close(s.stop)
		<-s.done
		err = s.Save()
	})
	return err
}
