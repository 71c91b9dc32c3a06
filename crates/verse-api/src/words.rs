//! Fixed vocabularies of the API: fields that take one of a few words are enums, each
//! variant serialised as its word, so the JSON is what a string field would have carried
//! and a word the daemon does not know is refused when read, not matched on later.
//!
//! [`words!`] declares such an enum once: its variants with their words, and from that
//! `as_str`, `Display`, `FromStr` (refusing an unknown word with the allowed ones) and
//! `ALL`. Serde reads and writes the same words through `#[serde(rename)]`.

/// A word that is not one of an enum's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{word}` is not a {what} (allowed: {allowed})")]
pub struct UnknownWord {
    /// What the word should have named, e.g. "backend".
    pub what: &'static str,
    pub word: String,
    /// The allowed words, comma-separated.
    pub allowed: String,
}

/// Declares an enum whose variants are words (see the module docs).
#[macro_export]
macro_rules! words {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $word:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        $vis enum $name {
            $( $(#[$vmeta])* #[serde(rename = $word)] $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word this variant is on the wire (and in the database).
            pub fn as_str(&self) -> &'static str {
                match self {
                    $( $name::$variant => $word, )+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                // `pad`, not `write_str`: `{:<10}` lines words up in tables.
                f.pad(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::words::UnknownWord;
            fn from_str(word: &str) -> Result<Self, Self::Err> {
                match word {
                    $( $word => Ok($name::$variant), )+
                    _ => Err($crate::words::UnknownWord {
                        what: $what,
                        word: word.to_string(),
                        allowed: [$($word),+].join(", "),
                    }),
                }
            }
        }
    };
}
