// Fault points: named places where a test stops, stalls or kills this process, to prove what
// happens in the windows between two steps that must follow each other (the output rule's edges:
// an epoch's release record and its output, a lease check and the release). Compiled only with
// the build option TANDEM_FAULT_POINTS (on for the test build, off for releases: then faultPoint()
// is empty and costs nothing).
//
// TANDEM_FAULTS="NAME=ACTION[@K],..." in the environment arms them; ACTION is
//   kill       SIGKILL this process
//   stop       SIGSTOP this process (a test sends SIGCONT), as if its host froze right there
//   stall-MS   this thread sleeps MS milliseconds (the process goes on)
// @K: only at the K-th time the point is reached (default: every time for stall, the first for
// kill and stop). Names in use: primary.after-show, primary.before-record, standby.before-commit,
// standby.before-release-read.
#pragma once

namespace tandem {

#ifdef TANDEM_FAULT_POINTS
void faultPoint(const char* name);
#else
inline void faultPoint(const char*) {}
#endif

}  // namespace tandem
