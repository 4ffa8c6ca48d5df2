//! Who failed first, case by case: how the pump stopped and how each end of
//! the stream ended, as the lab's kills and cut links leave them.

use rstest::rstest;

use super::*;

const MIB12: u64 = 12 << 20;

fn end(side: Side, status: End, stderr: &str) -> ProcessEnd {
    let (host, remote, cmdline) = match side {
        Side::Source => ("client1", true, "zfs send -I z/a@1 z/a@2"),
        _ => ("backup", false, "zfs receive -s z/b"),
    };
    ProcessEnd {
        side,
        host: host.into(),
        remote,
        cmdline: cmdline.into(),
        status,
        stderr: stderr.into(),
        lost: None,
    }
}

const INCOMPLETE: &str = "cannot receive incremental stream: checksum mismatch or incomplete stream.\nPartially received snapshot is saved.";

fn ended(pumped: Result<u64, PumpStop>, sender: ProcessEnd, receiver: ProcessEnd) -> Ended {
    Ended {
        pumped,
        sender,
        receiver,
    }
}

fn write_failed() -> Result<u64, PumpStop> {
    Err(PumpStop::Write {
        bytes: MIB12,
        why: "Broken pipe (os error 32)".into(),
    })
}

/// (kind, side, host, bytes, message) of the failure, or "ok".
fn verdict(e: &Ended) -> String {
    match attribute(e) {
        Ok(n) => format!("ok {n}"),
        Err(f) => format!(
            "{:?} {} {} {}: {}",
            f.kind,
            f.side.map(|s| s.to_string()).unwrap_or_default(),
            f.host.unwrap_or_default(),
            f.bytes,
            f.message
        ),
    }
}

#[rstest]
#[case::all_well(
    ended(
        Ok(MIB12),
        end(Side::Source, End::Success, ""),
        end(Side::Target, End::Success, "")
    ),
    "ok 12582912"
)]
// `pkill zfs send` on the client: its ssh session ends with 255 while the
// connection stays up; the receiver then finds the stream cut short.
#[case::sender_killed_on_the_client(
    ended(Ok(MIB12), end(Side::Source, End::Code(255), ""), end(Side::Target, End::Code(1), INCOMPLETE)),
    "Interrupted source client1 12582912: on client1: `zfs send -I z/a@1 z/a@2` ended without saying why (exit status 255) after 12.0 MiB; it was probably killed"
)]
// `pkill zfs receive` on the server: the pump cannot write, zfleet stops the sender.
#[case::receiver_killed_on_the_server(
    ended(write_failed(), end(Side::Source, End::KilledHere, ""), end(Side::Target, End::Signal(9), "")),
    "Interrupted target backup 12582912: on backup: `zfs receive -s z/b` was killed (signal 9) after 12.0 MiB"
)]
// `pkill ssh` on the server: the sender's local ssh process dies.
#[case::the_ssh_carrying_the_stream_killed(
    ended(Ok(MIB12), end(Side::Source, End::Signal(9), ""), end(Side::Target, End::Code(1), INCOMPLETE)),
    "Interrupted source client1 12582912: the ssh session to client1 carrying `zfs send -I z/a@1 z/a@2` was killed (signal 9) after 12.0 MiB"
)]
#[case::the_clients_link_cut(
    ended(
        Ok(MIB12),
        ProcessEnd { lost: Some("Timeout, server 10.77.0.2 not responding.".into()), ..end(Side::Source, End::Code(255), "") },
        end(Side::Target, End::Code(1), INCOMPLETE)
    ),
    "Unreachable source client1 12582912: client1 stopped answering during `zfs send -I z/a@1 z/a@2`, after 12.0 MiB: Timeout, server 10.77.0.2 not responding."
)]
#[case::no_space_on_the_server(
    ended(write_failed(), end(Side::Source, End::KilledHere, ""), end(Side::Target, End::Code(1), "cannot receive new filesystem stream: out of space")),
    "NoSpace target backup 12582912: on backup: `zfs receive -s z/b` failed (exit status 1) after 12.0 MiB: cannot receive new filesystem stream: out of space"
)]
#[case::target_modified_after_the_stream(
    ended(Ok(4096), end(Side::Source, End::Success, ""), end(Side::Target, End::Code(1), "cannot receive incremental stream: destination z/b has been modified\nsince most recent snapshot")),
    "Diverged target backup 4096: on backup: `zfs receive -s z/b` failed (exit status 1) after 4.0 KiB: cannot receive incremental stream: destination z/b has been modified\nsince most recent snapshot"
)]
// The sender's own complaint explains an empty stream better than the
// receiver's complaint about it.
#[case::the_sender_refuses_before_sending(
    ended(Ok(0), end(Side::Source, End::Code(1), "warning: cannot send 'z/a@2': incremental source (z/a@1) does not exist"), end(Side::Target, End::Code(1), "cannot receive: failed to read from stream")),
    "Zfs { zfs: MissingBase } source client1 0: on client1: `zfs send -I z/a@1 z/a@2` failed (exit status 1) after 0 B: warning: cannot send 'z/a@2': incremental source (z/a@1) does not exist"
)]
#[case::a_remote_receiver_whose_host_went_away(
    ended(
        write_failed(),
        end(Side::Source, End::KilledHere, ""),
        ProcessEnd { remote: true, lost: Some("Connection to 10.77.0.3 closed by remote host.".into()), ..end(Side::Target, End::Code(255), "") }
    ),
    "Unreachable target backup 12582912: backup stopped answering during `zfs receive -s z/b`, after 12.0 MiB: Connection to 10.77.0.3 closed by remote host."
)]
#[case::a_corrupt_compressed_stream(
    ended(
        Err(PumpStop::Read { bytes: 1024, why: "Unknown frame descriptor".into() }),
        end(Side::Source, End::KilledHere, ""),
        end(Side::Target, End::Code(1), INCOMPLETE)
    ),
    "Interrupted zfleet  1024: the stream from client1 to backup broke in zfleet after 1.0 KiB: Unknown frame descriptor"
)]
#[case::zfleet_broke_the_stream_itself(
    ended(
        Err(PumpStop::Read { bytes: 1024, why: "Unknown frame descriptor".into() }),
        end(Side::Source, End::KilledHere, ""),
        end(Side::Target, End::Success, "")
    ),
    "Interrupted zfleet  1024: the stream from client1 to backup broke in zfleet after 1.0 KiB: Unknown frame descriptor"
)]
fn who_failed_first(#[case] e: Ended, #[case] want: &str) {
    assert_eq!(verdict(&e), want);
}
