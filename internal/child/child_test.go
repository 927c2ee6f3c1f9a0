package child

import (
	"os/exec"
	"testing"
	"time"
)

func TestExitAndWait(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"success", []string{"-c", "exit 0"}, 0},
		{"failure", []string{"-c", "exit 3"}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Start(exec.Command("sh", tc.args...))
			if err != nil {
				t.Fatal(err)
			}
			code, ok := p.Wait(10 * time.Second)
			if !ok || code != tc.code {
				t.Fatalf("Wait: got code %d, exited %v; want code %d, exited", code, ok, tc.code)
			}
			if !p.Exited() {
				t.Fatal("Exited is false after Wait returned")
			}
			if (p.Err() != nil) != (tc.code != 0) {
				t.Fatalf("Err = %v for exit code %d", p.Err(), tc.code)
			}
		})
	}
}

func TestStillRunning(t *testing.T) {
	p, err := Start(exec.Command("sleep", "30"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { p.Cmd.Process.Kill(); <-p.Done() }()
	if p.Exited() || p.Err() != nil {
		t.Fatalf("a running child: Exited %v, Err %v", p.Exited(), p.Err())
	}
	if _, ok := p.Wait(50 * time.Millisecond); ok {
		t.Fatal("Wait reported a running child as exited")
	}
}

func TestStartFails(t *testing.T) {
	if _, err := Start(exec.Command("/nonexistent/program")); err == nil {
		t.Fatal("Start of a missing program did not fail")
	}
}
