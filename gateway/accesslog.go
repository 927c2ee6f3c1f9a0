package gateway

import (
	"strconv"
	"sync"
	"time"

	"hedge/internal/linelog"
	"hedge/internal/problem"
)

// accessLog writes one JSON line per request through a linelog.Writer,
// so the request path never waits on a write system call.
type accessLog struct {
	*linelog.Writer
}

func openAccessLog(path string, every time.Duration) (*accessLog, error) {
	w, err := linelog.Open(path, every)
	if err != nil {
		return nil, err
	}
	return &accessLog{w}, nil
}

// entry is what one line records.
type entry struct {
	start    time.Time
	dur      time.Duration
	region   string
	node     string
	listener string
	proto    string // "1.1", "2" or "3"
	route    string
	id       []byte
	client   []byte
	method   []byte
	host     []byte
	path     []byte
	status   int
	bytesIn  int
	bytesOut int
	upstream string
	attempts int
}

var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (a *accessLog) write(e *entry) {
	bp := linePool.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, `{"ts":"`...)
	b = e.start.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
	b = append(b, `","region":"`...)
	b = append(b, e.region...)
	b = append(b, `","node":"`...)
	b = append(b, e.node...)
	b = append(b, `","listener":"`...)
	b = append(b, e.listener...)
	b = append(b, `","proto":"`...)
	b = append(b, e.proto...)
	b = append(b, `","id":`...)
	b = problem.AppendString(b, e.id)
	b = append(b, `,"client":"`...)
	b = append(b, e.client...)
	b = append(b, `","method":`...)
	b = problem.AppendString(b, e.method)
	b = append(b, `,"host":`...)
	b = problem.AppendString(b, e.host)
	b = append(b, `,"path":`...)
	b = problem.AppendString(b, e.path)
	b = append(b, `,"route":"`...)
	b = append(b, e.route...)
	b = append(b, `","status":`...)
	b = strconv.AppendInt(b, int64(e.status), 10)
	b = append(b, `,"bytes_in":`...)
	b = strconv.AppendInt(b, int64(e.bytesIn), 10)
	b = append(b, `,"bytes_out":`...)
	b = strconv.AppendInt(b, int64(e.bytesOut), 10)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, float64(e.dur.Microseconds())/1000, 'f', 3, 64)
	if e.upstream != "" {
		b = append(b, `,"upstream":`...)
		b = problem.AppendString(b, e.upstream)
		b = append(b, `,"attempts":`...)
		b = strconv.AppendInt(b, int64(e.attempts), 10)
	}
	b = append(b, "}\n"...)
	a.Write(b)
	*bp = b
	linePool.Put(bp)
}
