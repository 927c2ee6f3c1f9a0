// Package benchkit is the plumbing the end-to-end benchmark harnesses
// (e2e/bench, e2e/h2bench, e2e/moneybench, e2e/wafbench and
// e2e/streambench) share: the run itself (a Workspace with the copy of
// hedge it measures, the tools it needs, a Bounded context that signals
// end), child processes pinned to a CPU in their own process group (Proc),
// hedge and nginx started from a configuration that was checked first
// (WriteHedgeConfig, StartHedge, StartNginx, and for the single-node
// harnesses HedgeBenchRegions and StartBenchHedge), readings of /proc
// (ReadStat, CPUTicks, Children, OthersTicks, CPUBusy, SumFields),
// hedge's CPU profile (TakeProfile), the machine description and result
// files of their reports (Machine, NginxVersion, WriteJSON, WriteResults,
// Median), and their command lines: the flags that place them (Placement,
// DistinctCPUs) and the roles a harness re-executes itself as (Main,
// NewRole, Upstream).
package benchkit
