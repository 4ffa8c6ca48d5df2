//! Resume tokens, decoded in process: by serve before `zfs send -t` may run,
//! and by replication when it observes a partial receive.
//!
//! A token is `1-<fletcher4 of the payload, hex>-<unpacked length, hex>-<payload, hex>`
//! where the payload is a zlib-compressed nvlist, packed in ZFS's native
//! encoding (`fnvlist_pack`), with the fields of the interrupted send (`toname`, `toguid`, `fromguid`, offsets,
//! flags). It comes from the peer, so nothing in it is trusted: serve reads
//! the fields the way libzfs reads them (type by type, refusing anything it
//! does not know, duplicates and trailing bytes), never from the text
//! `zfs send -nv -t` prints, where a string field with a newline could
//! forge a `toname = …` line.

/// The fields of a token that decide what would be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeToken {
    pub toname: String,
    pub toguid: u64,
    /// Set for an incremental send.
    pub fromguid: Option<u64>,
}

/// Tokens are a few hundred bytes; anything near this is not one.
const MAX_UNPACKED: u64 = 64 << 10;

/// `NV_ENCODE_NATIVE`: the nvpairs as they lie in memory.
const NV_ENCODE_NATIVE: u8 = 0;
/// `nvh_endian` of a little-endian packer.
const LITTLE_ENDIAN: u8 = 1;

/// nvpair data types (`data_type_t` in nvpair.h) that tokens use.
mod ty {
    pub const BOOLEAN: i32 = 1;
    pub const INT32: i32 = 5;
    pub const UINT32: i32 = 6;
    pub const INT64: i32 = 7;
    pub const UINT64: i32 = 8;
    pub const STRING: i32 = 9;
    pub const UINT64_ARRAY: i32 = 16;
    pub const BOOLEAN_VALUE: i32 = 21;
}

pub fn decode(token: &str) -> Result<ResumeToken, String> {
    let bad = |why: &str| format!("the resume token is not valid: {why}");
    let parts: Vec<&str> = token.split('-').collect();
    let [version, checksum, unpacked, payload] = parts.as_slice() else {
        return Err(bad("expected four `-`-separated fields"));
    };
    if *version != "1" {
        return Err(bad("only version 1 is known"));
    }
    let hex_u64 = |s: &str| {
        (!s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u64::from_str_radix(s, 16).ok())
            .flatten()
    };
    let checksum = hex_u64(checksum).ok_or_else(|| bad("the checksum is not hex"))?;
    let unpacked = hex_u64(unpacked).ok_or_else(|| bad("the length is not hex"))?;
    if unpacked == 0 || unpacked > MAX_UNPACKED {
        return Err(bad("the length is out of range"));
    }
    if payload.is_empty() || payload.len() % 2 != 0 {
        return Err(bad("the payload is not whole bytes of hex"));
    }
    let compressed = payload
        .as_bytes()
        .chunks(2)
        .map(|p| {
            std::str::from_utf8(p)
                .ok()
                .filter(|s| s.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|s| u8::from_str_radix(s, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| bad("the payload is not hex"))?;
    if fletcher4_first_word(&compressed) != checksum {
        return Err(bad("its checksum does not match"));
    }
    let packed =
        inflate(&compressed, unpacked).ok_or_else(|| bad("the payload does not unpack"))?;
    if packed.len() as u64 != unpacked {
        return Err(bad("the unpacked length differs from the one stated"));
    }
    let fields = unpack_nvlist(&packed).map_err(|e| bad(&e))?;
    let mut toname = None;
    let mut toguid = None;
    let mut fromguid = None;
    for (name, value) in fields {
        match (name.as_str(), value) {
            ("toname", Value::Str(s)) => toname = Some(s),
            ("toguid", Value::U64(g)) => toguid = Some(g),
            ("fromguid", Value::U64(g)) => fromguid = Some(g),
            ("toname" | "toguid" | "fromguid", _) => {
                return Err(bad(&format!("`{name}` has the wrong type")))
            }
            _ => {}
        }
    }
    Ok(ResumeToken {
        toname: toname.ok_or_else(|| bad("it names no snapshot (`toname`)"))?,
        toguid: toguid.ok_or_else(|| bad("it has no `toguid`"))?,
        fromguid,
    })
}

/// The first word of ZFS's fletcher-4 (`fletcher_4_native_varsize`): the sum
/// of the 32-bit native-endian words; a trailing partial word is ignored.
fn fletcher4_first_word(data: &[u8]) -> u64 {
    data.chunks_exact(4)
        .map(|w| u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]])))
        .fold(0u64, u64::wrapping_add)
}

fn inflate(data: &[u8], limit: u64) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(data)
        .take(limit + 1)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Flag,
    U64(u64),
    Str(String),
    Other,
}

/// The packed bytes, read with the packer's byte order.
struct Packed<'a> {
    buf: &'a [u8],
    little: bool,
}

impl Packed<'_> {
    fn bytes(&self, at: usize, n: usize) -> Result<&[u8], String> {
        at.checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .map(|e| &self.buf[at..e])
            .ok_or_else(|| "the nvlist ends early".to_string())
    }
    fn u16(&self, at: usize) -> Result<u16, String> {
        let b = self.bytes(at, 2)?;
        let a = [b[0], b[1]];
        Ok(if self.little {
            u16::from_le_bytes(a)
        } else {
            u16::from_be_bytes(a)
        })
    }
    fn u32(&self, at: usize) -> Result<u32, String> {
        let b = self.bytes(at, 4)?;
        let a = [b[0], b[1], b[2], b[3]];
        Ok(if self.little {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        })
    }
    fn u64(&self, at: usize) -> Result<u64, String> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.bytes(at, 8)?);
        Ok(if self.little {
            u64::from_le_bytes(a)
        } else {
            u64::from_be_bytes(a)
        })
    }
}

/// `NV_ALIGN`: 8 bytes.
fn align8(n: usize) -> usize {
    (n + 7) & !7
}

/// Header, then the list's version and flags.
const LIST_START: usize = 4 + 8;
/// `nvpair_t`: size, name size, reserved, element count, type.
const PAIR_HEADER: usize = 16;

/// The pairs of a natively packed nvlist, in order, read the way libnvpair
/// reads them: each pair's stated size, its NUL-terminated name, its value
/// at the aligned offset after the name (a string up to its first NUL, as C
/// reads it). Only the types a resume token has are accepted; a nested
/// list, a duplicate name, a pair that does not fit or bytes after the end
/// are refused.
fn unpack_nvlist(buf: &[u8]) -> Result<Vec<(String, Value)>, String> {
    let header = buf.get(..4).ok_or("the nvlist ends early")?;
    if header[0] != NV_ENCODE_NATIVE {
        return Err("the nvlist is not in ZFS's native encoding".into());
    }
    // libnvpair unpacks native lists only with the byte order they were
    // packed with.
    let host_little = cfg!(target_endian = "little");
    if (header[1] == LITTLE_ENDIAN) != host_little {
        return Err("the nvlist was packed with another byte order".into());
    }
    let p = Packed {
        buf,
        little: host_little,
    };
    if buf.len() < LIST_START {
        return Err("the nvlist ends early".into());
    }
    let mut at = LIST_START;
    let mut out: Vec<(String, Value)> = Vec::new();
    loop {
        let size = p.u32(at)? as usize;
        if size == 0 {
            at += 4;
            break;
        }
        if size < PAIR_HEADER || size % 8 != 0 || at + size > buf.len() {
            return Err("a pair's size is not valid".into());
        }
        let pair = Packed {
            buf: p.bytes(at, size)?,
            little: p.little,
        };
        let name_size = usize::from(pair.u16(4)?);
        let nelem = pair.u32(8)? as i32;
        let kind = pair.u32(12)? as i32;
        let name = pair.bytes(PAIR_HEADER, name_size)?;
        let Some((0, name)) = name.split_last() else {
            return Err("a pair's name is not NUL-terminated".into());
        };
        if name.contains(&0) {
            return Err("a pair's name holds a NUL".into());
        }
        let name = String::from_utf8(name.to_vec()).map_err(|_| "a pair's name is not UTF-8")?;
        let value_at = align8(PAIR_HEADER + name_size);
        let value = match kind {
            ty::BOOLEAN if nelem == 0 => Value::Flag,
            ty::INT32 | ty::UINT32 | ty::BOOLEAN_VALUE if nelem == 1 => {
                pair.u32(value_at)?;
                Value::Other
            }
            ty::INT64 if nelem == 1 => {
                pair.u64(value_at)?;
                Value::Other
            }
            ty::UINT64 if nelem == 1 => Value::U64(pair.u64(value_at)?),
            ty::STRING if nelem == 1 => {
                let rest = pair.bytes(value_at, size.saturating_sub(value_at))?;
                let end = rest
                    .iter()
                    .position(|b| *b == 0)
                    .ok_or_else(|| format!("`{name}` is not NUL-terminated"))?;
                Value::Str(
                    String::from_utf8(rest[..end].to_vec())
                        .map_err(|_| format!("`{name}` is not UTF-8"))?,
                )
            }
            ty::UINT64_ARRAY if nelem >= 0 => {
                pair.bytes(value_at, nelem as usize * 8)?;
                Value::Other
            }
            _ => return Err(format!("`{name}` has a type ({kind}) tokens do not have")),
        };
        if out.iter().any(|(n, _)| *n == name) {
            return Err(format!("`{name}` appears twice"));
        }
        out.push((name, value));
        at += size;
    }
    if at != buf.len() {
        return Err("bytes follow the end of the nvlist".into());
    }
    Ok(out)
}

/// Whether the token continues a send of `toname` as it is now: `toguid`
/// must be that snapshot's guid (zfs finds the snapshot to send by guid,
/// searching upwards from `toname`, so another dataset's guid would send
/// that dataset), and `fromguid` one of the same dataset's snapshots or
/// bookmarks. `guids` is `zfs list -H -p -o name,guid -t snapshot,bookmark
/// -d 1 DATASET` output.
pub fn check_guids(t: &ResumeToken, guids: &str) -> Result<(), String> {
    let (dataset, _) = t
        .toname
        .split_once('@')
        .ok_or("the token's `toname` is not a snapshot")?;
    let of_dataset = |name: &str| {
        name.strip_prefix(dataset)
            .is_some_and(|rest| rest.starts_with('@') || rest.starts_with('#'))
    };
    let rows: Vec<(&str, u64)> = guids
        .lines()
        .filter_map(|l| {
            let (n, g) = l.split_once('\t')?;
            Some((n, g.trim().parse().ok()?))
        })
        .filter(|(n, _)| of_dataset(n))
        .collect();
    match rows.iter().find(|(n, _)| *n == t.toname) {
        None => return Err(format!("`{}` does not exist", t.toname)),
        Some((_, g)) if *g != t.toguid => {
            return Err(format!("the token's guid is not that of `{}`", t.toname))
        }
        Some(_) => {}
    }
    if let Some(from) = t.fromguid {
        if !rows.iter().any(|(_, g)| *g == from) {
            return Err(format!(
                "the token's incremental source is not a snapshot or bookmark of `{dataset}`"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A real token, as OpenZFS left it in the receive error (and as
    /// `zfs send -nvP -t` printed its contents) in the guest captures.
    #[test]
    fn real_tokens_decode_to_what_openzfs_printed() {
        for (v, to, from) in [
            ("openzfs-2.3.2", 0x2112da68a7967a5d, 0x8f61de38d03aa9b0),
            ("openzfs-2.1.11", 0xdd3ceedbb8023624, 0xb109f790af7d89d7),
        ] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(v);
            let err = std::fs::read_to_string(dir.join("err-recv-interrupted.stderr")).unwrap();
            let token = err
                .split_whitespace()
                .skip_while(|w| *w != "-t")
                .nth(1)
                .unwrap();
            let t = decode(token).unwrap();
            assert_eq!(
                t.toname, "zroot/data@autosnap_2025-01-01_01:00:00_hourly",
                "{v}"
            );
            assert_eq!((t.toguid, t.fromguid), (to, Some(from)), "{v}");
            let printed =
                std::fs::read_to_string(dir.join("zfs-send-nvP-resume-token.txt")).unwrap();
            assert!(printed.contains(&format!("toguid = {to:#x}")), "{v}");
        }
    }

    /// Test-side encoder, written from the format description above.
    pub(crate) enum F<'a> {
        U64(&'a str, u64),
        Str(&'a str, &'a str),
        Flag(&'a str),
        U64s(&'a str, &'a [u64]),
        Nested(&'a str),
    }

    /// Packs like `fnvlist_pack` on a little-endian machine.
    pub(crate) fn encode(fields: &[F<'_>]) -> String {
        let mut nv = vec![NV_ENCODE_NATIVE, LITTLE_ENDIAN, 0, 0];
        nv.extend(0i32.to_le_bytes()); // version
        nv.extend(1u32.to_le_bytes()); // NV_UNIQUE_NAME
        for f in fields {
            let (name, kind, nelem) = match f {
                F::U64(n, _) => (n, ty::UINT64, 1),
                F::Str(n, _) => (n, ty::STRING, 1),
                F::Flag(n) => (n, ty::BOOLEAN, 0),
                F::U64s(n, v) => (n, ty::UINT64_ARRAY, v.len() as i32),
                F::Nested(n) => (n, 19, 1),
            };
            let mut value = Vec::new();
            match f {
                F::U64(_, v) => value.extend(v.to_le_bytes()),
                F::Str(_, s) => {
                    value.extend(s.as_bytes());
                    value.push(0);
                }
                F::Flag(_) => {}
                F::U64s(_, v) => v.iter().for_each(|x| value.extend(x.to_le_bytes())),
                F::Nested(_) => value.extend([0u8; 24]),
            }
            let name_size = name.len() + 1;
            let value_at = align8(PAIR_HEADER + name_size);
            let size = align8(value_at + value.len());
            let mut pair = vec![0u8; size];
            pair[0..4].copy_from_slice(&(size as i32).to_le_bytes());
            pair[4..6].copy_from_slice(&(name_size as i16).to_le_bytes());
            pair[8..12].copy_from_slice(&nelem.to_le_bytes());
            pair[12..16].copy_from_slice(&kind.to_le_bytes());
            pair[PAIR_HEADER..PAIR_HEADER + name.len()].copy_from_slice(name.as_bytes());
            pair[value_at..value_at + value.len()].copy_from_slice(&value);
            nv.extend(pair);
        }
        nv.extend([0u8; 4]);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
        std::io::Write::write_all(&mut z, &nv).unwrap();
        let compressed = z.finish().unwrap();
        let hex: String = compressed.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "1-{:x}-{:x}-{hex}",
            fletcher4_first_word(&compressed),
            nv.len()
        )
    }

    fn usual(toname: &str) -> String {
        encode(&[
            F::U64("object", 1),
            F::U64("offset", 0),
            F::U64("bytes", 4096),
            F::U64("toguid", 777),
            F::Str("toname", toname),
            F::Flag("embedok"),
            F::Flag("compressok"),
            F::U64s("redact_snaps", &[]),
        ])
    }

    /// A token OpenZFS 2.3.2 wrote (the guest, `receive_resume_token` of an
    /// interrupted incremental receive of `zroot/data@s3`).
    const REAL: &str = "1-ffe801e7b-118-789c636064000310a501c49c50360710a715e5e7a69766a6304081a64ae6ba859b596215806c762475f94959a9c9250c0c2c507518f26969c5a92520994570793624f9a4ca92d46220fda3600956fd25f9105704def59bf73e6a859f06923c27583e2f31379581a1aa283fbf443f25b124d1a1d818282e01d50ff35f6a6e526a4a7e36d87c6e24f1e4fcdc82a2d4e262a0141c00004ca82742";

    #[test]
    fn a_real_token_decodes() {
        assert_eq!(
            decode(REAL).unwrap(),
            ResumeToken {
                toname: "zroot/data@s3".into(),
                toguid: 0x4ea8_5aef_9e4e_dd51,
                fromguid: Some(0x5d04_b3a1_ae69_2429),
            }
        );
    }

    #[test]
    fn a_token_is_read_field_by_field() {
        let t = decode(&usual("zroot/persistSave@s1")).unwrap();
        assert_eq!(
            t,
            ResumeToken {
                toname: "zroot/persistSave@s1".into(),
                toguid: 777,
                fromguid: None
            }
        );
    }

    /// The old check took the first `toname = ` line of `zfs send -nv -t`
    /// output; a string field with a newline put a fake one before the real
    /// one. Decoded, the fake is just the value of another field.
    #[test]
    fn a_string_with_a_newline_cannot_forge_the_snapshot() {
        let forged = encode(&[
            F::Str("aaa", "x\n\ttoname = zroot/persistSave@s1"),
            F::U64("toguid", 9),
            F::Str("toname", "zroot/secret@s1"),
        ]);
        let t = decode(&forged).unwrap();
        assert_eq!(t.toname, "zroot/secret@s1");
        // A newline in `toname` itself is not a snapshot name.
        let t = decode(&encode(&[
            F::U64("toguid", 9),
            F::Str("toname", "zroot/secret@s1\ntoname = zroot/persistSave@s1"),
        ]))
        .unwrap();
        assert!(crate::zfs::SnapshotName::parse(&t.toname).is_err());
        // C reads a string up to its first NUL, and so does serve.
        let t = decode(&encode(&[
            F::U64("toguid", 9),
            F::Str("toname", "zroot/secret@s1\0zroot/persistSave@s1"),
        ]))
        .unwrap();
        assert_eq!(t.toname, "zroot/secret@s1");
    }

    #[test]
    fn tampered_or_ambiguous_tokens_are_refused() {
        let good = usual("zroot/persistSave@s1");
        let why = |t: &str| decode(t).unwrap_err();
        // A changed payload byte breaks the checksum.
        let mut chars: Vec<char> = good.chars().collect();
        // Inside the payload's first whole words (a trailing partial word is
        // not part of the checksum, as in ZFS).
        let at = good.rfind('-').unwrap() + 9;
        chars[at] = if chars[at] == '0' { '1' } else { '0' };
        let tampered: String = chars.into_iter().collect();
        assert!(why(&tampered).contains("checksum"), "{}", why(&tampered));
        assert_eq!(
            why("1-abc-def"),
            "the resume token is not valid: expected four `-`-separated fields"
        );
        assert!(why("2-1-10-00").contains("only version 1"));
        assert!(why("1-0-10-0").contains("whole bytes"));
        assert!(why(&encode(&[
            F::Str("toname", "zroot/persistSave@s1"),
            F::Str("toname", "zroot/secret@s1"),
            F::U64("toguid", 1),
        ]))
        .contains("`toname` appears twice"));
        assert!(why(&encode(&[
            F::Str("toname", "zroot/persistSave@s1"),
            F::U64("toguid", 1),
            F::Nested("x"),
        ]))
        .contains("type (19)"));
        assert!(why(&encode(&[F::U64("toguid", 1)])).contains("names no snapshot"));
        assert!(
            why(&encode(&[F::Str("toname", "z/a@b"), F::Str("toguid", "1")]))
                .contains("`toguid` has the wrong type")
        );
    }

    #[test]
    fn guids_must_be_those_of_the_named_snapshot() {
        let listing = "zroot/persistSave@s1\t777\nzroot/persistSave#zfleet_vault:s0\t555\nzroot/persistSave/child@s1\t999\nzroot/other@x\t888\n";
        let t = |toguid, fromguid| ResumeToken {
            toname: "zroot/persistSave@s1".into(),
            toguid,
            fromguid,
        };
        check_guids(&t(777, None), listing).unwrap();
        check_guids(&t(777, Some(555)), listing).unwrap();
        assert_eq!(
            check_guids(&t(888, None), listing).unwrap_err(),
            "the token's guid is not that of `zroot/persistSave@s1`"
        );
        assert!(check_guids(&t(777, Some(999)), listing)
            .unwrap_err()
            .contains("not a snapshot or bookmark of `zroot/persistSave`"));
        let gone = ResumeToken {
            toname: "zroot/persistSave@s9".into(),
            toguid: 1,
            fromguid: None,
        };
        assert_eq!(
            check_guids(&gone, listing).unwrap_err(),
            "`zroot/persistSave@s9` does not exist"
        );
    }
}
