//! Reading what an initrd's askpass says, and deciding what to do about it.
//!
//! Askpass programs differ (NixOS `cryptsetup-askpass` runs cryptsetup, systemd
//! initrds run `systemd-tty-ask-password-agent`, Debian's dropbear offers
//! `cryptroot-unlock`), but they share a shape: a prompt that ends in `:`
//! without a newline, a message when a passphrase is rejected, and then the
//! same prompt again. A different prompt after an accepted passphrase is the
//! next encrypted device. This module turns output into those events, and
//! [`Conversation`] decides what zfleet does next; both are pure.

/// Something askpass said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A request for a passphrase, e.g. `Enter passphrase for /dev/sda2:`.
    Prompt(String),
    /// A message that the last passphrase was wrong.
    Rejected(String),
}

/// Splits output into lines and finds events, across chunk boundaries. A
/// prompt is recognised without its newline, since askpass waits after it.
///
/// Works on bytes and decodes only whole lines, so a multi-byte character
/// split between two reads is decoded whole. The text of events is for
/// deciding what to do, never for messages: those come from the redacted
/// transcript (see [`crate::unlock::redact`]).
#[derive(Debug, Default)]
pub struct Scanner {
    pending: Vec<u8>,
}

/// A line this long without a line break is taken as a line: askpass output
/// is short, and whatever sends more must not grow zfleet's memory.
const MAX_LINE: usize = 4096;

const PROMPT_WORDS: &[&str] = &["passphrase", "password", "pass phrase", "unlock"];
const REJECTION_WORDS: &[&str] = &[
    "no key available",
    "incorrect",
    "wrong",
    "bad password",
    "invalid passphrase",
    "not correct",
    "denied",
    "try again",
];

pub(crate) fn is_prompt(line: &str) -> bool {
    let t = line.trim();
    let lower = t.to_ascii_lowercase();
    t.ends_with(':') && PROMPT_WORDS.iter().any(|w| lower.contains(w))
}

pub(crate) fn is_rejection(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    REJECTION_WORDS.iter().any(|w| lower.contains(w))
}

impl Scanner {
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Event> {
        self.pending.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(i) = self.pending.iter().position(|b| matches!(b, b'\n' | b'\r')) {
            let line: Vec<u8> = self.pending.drain(..=i).collect();
            line_events(&line[..i], &mut events);
        }
        // A prompt waits for input on the same line.
        if self.pending.len() >= MAX_LINE || is_prompt(&String::from_utf8_lossy(&self.pending)) {
            let line = std::mem::take(&mut self.pending);
            line_events(&line, &mut events);
        }
        events
    }

    /// Whether everything fed so far was taken as whole lines: also after a
    /// prompt that ended without a line break.
    pub fn at_line_start(&self) -> bool {
        self.pending.is_empty()
    }

    /// Output not yet ended by a newline (a message cut short by exit).
    pub fn flush(&mut self) -> Vec<Event> {
        let rest = std::mem::take(&mut self.pending);
        let mut events = Vec::new();
        line_events(&rest, &mut events);
        events
    }
}

fn line_events(line: &[u8], events: &mut Vec<Event>) {
    let line = String::from_utf8_lossy(line);
    let t = line.trim();
    if t.is_empty() {
        return;
    }
    if is_rejection(t) {
        events.push(Event::Rejected(t.to_string()));
    } else if is_prompt(t) {
        events.push(Event::Prompt(t.to_string()));
    }
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Keep reading.
    Wait,
    /// Send the passphrase (again).
    Send,
    /// Stop: the passphrase was rejected and the retries are used up.
    GiveUp,
    /// Stop: askpass keeps asking for new devices beyond any sensible number.
    TooManyPrompts,
}

/// The most devices one host is expected to ask for, each with the same
/// passphrase (a mirror of LUKS disks asks once per disk).
pub const MAX_DEVICES: u32 = 16;

/// The state of one askpass session.
#[derive(Debug)]
pub struct Conversation {
    retries: u32,
    /// Passphrases sent so far.
    pub sent: u32,
    /// Rejections seen so far.
    pub rejections: u32,
    /// The prompt the last passphrase answered, if one was seen.
    answered: Option<String>,
    /// A prompt seen before anything was sent.
    waiting: Option<String>,
    rejected: Option<String>,
    devices: u32,
}

impl Conversation {
    pub fn new(retries: u32) -> Self {
        Self {
            retries,
            sent: 0,
            rejections: 0,
            answered: None,
            waiting: None,
            rejected: None,
            devices: 0,
        }
    }

    /// Whether askpass has asked (so sending now answers a prompt).
    pub fn has_prompt(&self) -> bool {
        self.waiting.is_some()
    }

    /// Record that the passphrase was sent.
    pub fn sent(&mut self) {
        self.sent += 1;
        if self.waiting.is_some() {
            self.answered = self.waiting.take();
        }
        self.rejected = None;
    }

    /// The last passphrase was rejected (a message said so).
    pub fn was_rejected(&self) -> bool {
        self.rejected.is_some()
    }

    pub fn on_event(&mut self, ev: Event) -> Next {
        match ev {
            Event::Rejected(m) => {
                if self.sent > 0 {
                    self.rejected = Some(m);
                }
                Next::Wait
            }
            Event::Prompt(p) => {
                if self.sent == 0 {
                    // The first prompt: answer it.
                    self.waiting = Some(p);
                    return Next::Send;
                }
                let again = match &self.answered {
                    // Sent before any prompt was seen: the first prompt to show
                    // up is the one that passphrase answers, unless a rejection
                    // came first.
                    None if self.rejected.is_none() => {
                        self.answered = Some(p);
                        return Next::Wait;
                    }
                    None => true,
                    Some(a) => self.rejected.is_some() || *a == p,
                };
                if again {
                    self.rejections += 1;
                    self.rejected = None;
                    if self.rejections > self.retries {
                        return Next::GiveUp;
                    }
                    self.waiting = Some(p);
                    Next::Send
                } else {
                    // Accepted, and now another device asks.
                    self.devices += 1;
                    if self.devices >= MAX_DEVICES {
                        return Next::TooManyPrompts;
                    }
                    self.waiting = Some(p);
                    Next::Send
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(s: &mut Scanner, chunks: &[&str]) -> Vec<Event> {
        chunks.iter().flat_map(|c| s.feed(c.as_bytes())).collect()
    }

    #[test]
    fn scanner_finds_prompts_across_chunks() {
        let mut s = Scanner::default();
        let ev = feed_all(&mut s, &["Enter pass", "phrase for /dev/sda2: "]);
        assert_eq!(
            ev,
            [Event::Prompt("Enter passphrase for /dev/sda2:".into())]
        );
        let ev = feed_all(
            &mut s,
            &[
                "No key available with this passphrase.\n",
                "Enter passphrase for /dev/sda2: ",
            ],
        );
        assert_eq!(
            ev,
            [
                Event::Rejected("No key available with this passphrase.".into()),
                Event::Prompt("Enter passphrase for /dev/sda2:".into())
            ]
        );
        // Debian's cryptroot-unlock and systemd's agent.
        let ev = feed_all(
            &mut s,
            &[
                "cryptsetup: ERROR: sda3_crypt: cryptsetup failed, bad password or options?\r\n",
                "Please unlock disk sda3_crypt: ",
                "🔐 Please enter passphrase for disk root (cryptroot):",
            ],
        );
        assert_eq!(ev.len(), 3, "{ev:?}");
        assert!(matches!(ev[0], Event::Rejected(_)));
        assert!(matches!(ev[1], Event::Prompt(_)));
        assert!(matches!(ev[2], Event::Prompt(_)));
        assert!(feed_all(&mut s, &["Passphrase is not requested now\n"]).is_empty());
    }

    #[test]
    fn scanner_decodes_characters_split_between_reads() {
        let mut s = Scanner::default();
        let prompt = "Passphrase für « racine » :".as_bytes();
        let (a, b) = prompt.split_at(13);
        assert!(std::str::from_utf8(a).is_err(), "split inside a character");
        assert!(s.feed(a).is_empty());
        assert_eq!(
            s.feed(b),
            [Event::Prompt("Passphrase für « racine » :".into())]
        );
        // A line without end is cut, not kept growing.
        assert!(s.feed(&vec![b'x'; MAX_LINE + 1]).is_empty());
        assert!(s.pending.is_empty());
    }

    fn run(c: &mut Conversation, evs: &[Event]) -> Vec<Next> {
        let mut out = Vec::new();
        for e in evs {
            let n = c.on_event(e.clone());
            if n == Next::Send {
                c.sent();
            }
            out.push(n);
        }
        out
    }

    fn p(s: &str) -> Event {
        Event::Prompt(s.into())
    }
    fn r(s: &str) -> Event {
        Event::Rejected(s.into())
    }

    #[test]
    fn wrong_passphrase_without_retries_is_sent_once() {
        let mut c = Conversation::new(0);
        let n = run(
            &mut c,
            &[
                p("Enter passphrase for sda2:"),
                r("No key available"),
                p("Enter passphrase for sda2:"),
            ],
        );
        assert_eq!(n, [Next::Send, Next::Wait, Next::GiveUp]);
        assert_eq!(c.sent, 1);
    }

    #[test]
    fn retries_resend_then_give_up() {
        let mut c = Conversation::new(2);
        let evs = [
            p("Pass:"),
            r("wrong"),
            p("Pass:"),
            r("wrong"),
            p("Pass:"),
            r("wrong"),
            p("Pass:"),
        ];
        let n = run(&mut c, &evs);
        assert_eq!(c.sent, 3);
        assert_eq!(n.last(), Some(&Next::GiveUp));
    }

    #[test]
    fn same_prompt_again_is_a_rejection_without_a_message() {
        let mut c = Conversation::new(0);
        let n = run(
            &mut c,
            &[p("Please unlock disk root:"), p("Please unlock disk root:")],
        );
        assert_eq!(n[1], Next::GiveUp);
    }

    #[test]
    fn another_device_gets_the_same_passphrase() {
        let mut c = Conversation::new(0);
        let n = run(
            &mut c,
            &[
                p("Enter passphrase for disk1:"),
                p("Enter passphrase for disk2:"),
            ],
        );
        assert_eq!(n, [Next::Send, Next::Send]);
        assert_eq!(c.sent, 2);
    }

    #[test]
    fn sent_before_the_prompt_showed() {
        let mut c = Conversation::new(0);
        c.sent();
        // The late first prompt is the one already answered.
        assert_eq!(c.on_event(p("Pass:")), Next::Wait);
        // Asked again: rejected.
        assert_eq!(c.on_event(p("Pass:")), Next::GiveUp);
    }
}
