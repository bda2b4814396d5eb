// Every metric tandem exports, in one place (Prometheus conventions: tandem_ prefix, base units,
// _total for counters, _seconds and _bytes for units). ops/grafana and ops/prometheus use only these.
#pragma once

namespace tandem::metrics::names {

// Any tandem with a guest or a standby role.
inline constexpr const char* kRole = "tandem_role";  // gauge 1, label role=primary|standby
inline constexpr const char* kProtected = "tandem_protected";  // 1 while a standby holds every epoch
inline constexpr const char* kGeneration = "tandem_generation";
inline constexpr const char* kGuestExits = "tandem_guest_exits_total";  // label cpl=0|3

// A replicating primary.
inline constexpr const char* kEpochs = "tandem_epochs_total";
inline constexpr const char* kLastAckedEpoch = "tandem_last_acked_epoch";
inline constexpr const char* kEpochPause = "tandem_epoch_pause_seconds";       // histogram
inline constexpr const char* kEpochSize = "tandem_epoch_size_bytes";           // histogram, on the wire
inline constexpr const char* kEpochDirtyPages = "tandem_epoch_dirty_pages";    // histogram
inline constexpr const char* kAckLatency = "tandem_ack_latency_seconds";       // histogram
inline constexpr const char* kPagesSent = "tandem_pages_sent_total";           // label encoding
inline constexpr const char* kSentBytes = "tandem_sent_bytes_total";
inline constexpr const char* kHeldOutput = "tandem_held_output_bytes";
inline constexpr const char* kHeldOutputAge = "tandem_held_output_oldest_seconds";
inline constexpr const char* kReleasedOutput = "tandem_released_output_bytes_total";
inline constexpr const char* kHeartbeatAge = "tandem_heartbeat_age_seconds";   // either role
inline constexpr const char* kSessions = "tandem_replication_sessions_total";  // either role
inline constexpr const char* kPausedForOutput = "tandem_paused_for_output";
inline constexpr const char* kReplicationState = "tandem_replication_state";  // gauge 1, label state
inline constexpr const char* kRefusedSessions = "tandem_refused_sessions_total";  // incompatible standby
inline constexpr const char* kOperatorUnprotects = "tandem_operator_unprotects_total";  // tandem unprotect

// A standby.
inline constexpr const char* kCommittedEpoch = "tandem_committed_epoch";
inline constexpr const char* kPagesReceived = "tandem_pages_received_total";  // label encoding
inline constexpr const char* kReceivedBytes = "tandem_received_bytes_total";
inline constexpr const char* kDiscardedEpochs = "tandem_discarded_epochs_total";
inline constexpr const char* kIgnoredReplays = "tandem_ignored_replays_total";
inline constexpr const char* kDiskSyncs = "tandem_standby_disk_syncs_total";  // epochs with a guest flush
inline constexpr const char* kRefusedMessages = "tandem_refused_messages_total";  // label reason
inline constexpr const char* kFailoverAfter = "tandem_failover_after_seconds";  // either role
inline constexpr const char* kFailovers = "tandem_failovers_total";  // takeovers by this process

// Live migration: the source's progress, the target's postcopy faults.
inline constexpr const char* kMigrationPhase = "tandem_migration_phase";  // gauge 1, label phase
inline constexpr const char* kMigrationProgress = "tandem_migration_progress_ratio";  // of this round
inline constexpr const char* kMigrationRound = "tandem_migration_round";
inline constexpr const char* kMigrationSentBytes = "tandem_migration_sent_bytes";
inline constexpr const char* kMigrationDiskSentBytes = "tandem_migration_disk_sent_bytes";  // of those, disk chunks
inline constexpr const char* kMigrationRemaining = "tandem_migration_remaining_seconds";
inline constexpr const char* kMigrationExpectedDowntime = "tandem_migration_expected_downtime_seconds";
inline constexpr const char* kPostcopyFault = "tandem_postcopy_fault_seconds";  // histogram
inline constexpr const char* kPostcopyZeroFaults = "tandem_postcopy_zero_faults_total";
inline constexpr const char* kPostcopyOwedPages = "tandem_postcopy_owed_pages";

}  // namespace tandem::metrics::names
