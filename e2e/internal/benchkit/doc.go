// Package benchkit is the plumbing the end-to-end benchmark harnesses
// (e2e/bench and e2e/moneybench) share: child processes pinned to a CPU
// in their own process group (Proc), readings of /proc (ReadStat,
// OthersTicks, CPUBusy), and the machine description and result files of
// their reports (Machine, WriteJSON, WriteResults).
package benchkit
