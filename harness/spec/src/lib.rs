//! The numbered requirements of the protocol reference (section 9), as a closed set.
//!
//! Every check, violation and verdict in the harness names one of these. The statements and
//! sources live in `scenarios/requirements.toml`; a test keeps that file and this list in step.

use std::fmt;
use std::str::FromStr;

/// Requirement level, as in the protocol reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    /// Required for interoperability or correct delivery.
    Must,
    /// Robustness expected of a good implementation.
    Should,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Must => "MUST",
            Level::Should => "SHOULD",
        })
    }
}

macro_rules! requirements {
    ($($variant:ident = $id:literal, $level:ident;)*) => {
        /// One requirement of the protocol reference, e.g. `Req::Frame008` for `FRAME-008`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Req {
            $(
                #[doc = $id]
                $variant,
            )*
        }

        impl Req {
            /// Every requirement, in the order of the reference.
            pub const ALL: &'static [Req] = &[$(Req::$variant),*];

            /// The textual identifier, e.g. `"FRAME-008"`.
            pub const fn id(self) -> &'static str {
                match self { $(Req::$variant => $id),* }
            }

            /// MUST or SHOULD.
            pub const fn level(self) -> Level {
                match self { $(Req::$variant => Level::$level),* }
            }
        }

        impl FromStr for Req {
            type Err = UnknownReq;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($id => Ok(Req::$variant),)*
                    _ => Err(UnknownReq(s.to_owned())),
                }
            }
        }
    };
}

requirements! {
    Frame001 = "FRAME-001", Must;
    Frame002 = "FRAME-002", Must;
    Frame003 = "FRAME-003", Must;
    Frame004 = "FRAME-004", Must;
    Frame005 = "FRAME-005", Must;
    Frame006 = "FRAME-006", Must;
    Frame007 = "FRAME-007", Must;
    Frame008 = "FRAME-008", Should;
    Frame009 = "FRAME-009", Must;
    Frame010 = "FRAME-010", Should;
    Frame011 = "FRAME-011", Should;
    Frame012 = "FRAME-012", Must;
    Frame013 = "FRAME-013", Should;
    Type001 = "TYPE-001", Must;
    Type002 = "TYPE-002", Must;
    Type003 = "TYPE-003", Must;
    Type004 = "TYPE-004", Should;
    Type005 = "TYPE-005", Should;
    Open001 = "OPEN-001", Must;
    Open002 = "OPEN-002", Must;
    Open003 = "OPEN-003", Must;
    Ping001 = "PING-001", Should;
    Ping002 = "PING-002", Should;
    Seq001 = "SEQ-001", Must;
    Seq002 = "SEQ-002", Must;
    Seq003 = "SEQ-003", Must;
    Ack001 = "ACK-001", Must;
    Ack002 = "ACK-002", Must;
    Ack003 = "ACK-003", Should;
    Ack004 = "ACK-004", Must;
    Ack005 = "ACK-005", Must;
    Ack006 = "ACK-006", Must;
    Ack007 = "ACK-007", Should;
    Ord001 = "ORD-001", Must;
    Ord002 = "ORD-002", Must;
    Ord003 = "ORD-003", Should;
    Ord004 = "ORD-004", Should;
    Rtx001 = "RTX-001", Must;
    Rtx002 = "RTX-002", Must;
    Rtx003 = "RTX-003", Should;
    Rtx004 = "RTX-004", Should;
    Rtx005 = "RTX-005", Should;
    Rtx006 = "RTX-006", Should;
    Rtx007 = "RTX-007", Should;
    Pub001 = "PUB-001", Must;
    Pub002 = "PUB-002", Should;
    Pub003 = "PUB-003", Should;
    Hs001 = "HS-001", Must;
    Hs002 = "HS-002", Must;
    Hs003 = "HS-003", Must;
    Hs004 = "HS-004", Must;
    Hs005 = "HS-005", Must;
    Hs006 = "HS-006", Must;
    Res001 = "RES-001", Must;
    Res002 = "RES-002", Should;
    Res003 = "RES-003", Should;
    Res004 = "RES-004", Must;
    Res005 = "RES-005", Should;
    Res006 = "RES-006", Must;
    Res007 = "RES-007", Should;
    Res008 = "RES-008", Must;
    Res009 = "RES-009", Must;
    Term001 = "TERM-001", Must;
    Term002 = "TERM-002", Must;
    Term003 = "TERM-003", Should;
    Term004 = "TERM-004", Should;
    Api001 = "API-001", Must;
    Api002 = "API-002", Must;
    Api003 = "API-003", Must;
    Api004 = "API-004", Must;
    Api005 = "API-005", Must;
}

impl Req {
    /// The area prefix, e.g. `"FRAME"` for `FRAME-008`.
    pub fn area(self) -> &'static str {
        let id = self.id();
        match id.find('-') {
            Some(i) => &id[..i],
            None => id,
        }
    }
}

impl fmt::Display for Req {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl serde::Serialize for Req {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.id())
    }
}

impl<'de> serde::Deserialize<'de> for Req {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A string that names no requirement of the reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownReq(pub String);

impl fmt::Display for UnknownReq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown requirement id `{}` (ids look like FRAME-008 or RES-006)", self.0)
    }
}

impl std::error::Error for UnknownReq {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seventy_one_requirements_with_unique_ids_that_round_trip() {
        assert_eq!(Req::ALL.len(), 71);
        let mut ids: Vec<_> = Req::ALL.iter().map(|r| r.id()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 71);
        for r in Req::ALL {
            assert_eq!(r.id().parse::<Req>(), Ok(*r));
        }
    }

    #[test]
    fn levels_and_areas() {
        assert_eq!(Req::Frame008.level(), Level::Should);
        assert_eq!(Req::Res009.level(), Level::Must);
        assert_eq!(Req::Term004.area(), "TERM");
        assert!("FRAME-999".parse::<Req>().is_err());
        assert!("frame-008".parse::<Req>().is_err());
    }
}
