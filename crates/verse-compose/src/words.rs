//! Tokens of a prompt: lower-cased words, numbers (digits or words), addresses and commas.

/// One token of a prompt.
#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    /// A lower-cased word (may contain `+`, `#` and inner dots: "c++", "node.js").
    Word(String),
    /// A number, from digits ("1.5") or words ("four", "half a", "one and a half").
    Number(f64),
    /// An address: a URL ("socks5://127.0.0.1:9050") or host:port ("10.0.0.1:3128").
    Address(String),
    /// A list separator (",", ";", "/").
    Comma,
}

impl Token {
    pub fn word(&self) -> Option<&str> {
        match self {
            Token::Word(w) => Some(w),
            _ => None,
        }
    }
}

fn small_number(word: &str) -> Option<f64> {
    Some(match word {
        "zero" | "no" => return None,
        "one" | "single" | "a" | "an" => 1.0,
        "two" | "dual" | "couple" | "double" => 2.0,
        "three" | "triple" => 3.0,
        "four" | "quad" => 4.0,
        "five" => 5.0,
        "six" | "hexa" => 6.0,
        "seven" => 7.0,
        "eight" | "octa" => 8.0,
        "nine" => 9.0,
        "ten" => 10.0,
        "eleven" => 11.0,
        "twelve" | "dozen" => 12.0,
        "thirteen" => 13.0,
        "fourteen" => 14.0,
        "fifteen" => 15.0,
        "sixteen" => 16.0,
        "twenty" => 20.0,
        "thirty" => 30.0,
        "forty" => 40.0,
        "fifty" => 50.0,
        "sixty" => 60.0,
        "hundred" => 100.0,
        _ => return None,
    })
}

/// True for the unit words a bare "a"/"an" may count ("a gig", "a core").
pub fn is_unit_word(word: &str) -> bool {
    size_unit(word).is_some() || cpu_unit(word)
}

/// Bytes per unit for the size words people write; GB and gigs are read as GiB.
pub fn size_unit(word: &str) -> Option<u64> {
    Some(match word {
        "k" | "kb" | "kib" | "kilobyte" | "kilobytes" => 1 << 10,
        "m" | "mb" | "mib" | "meg" | "megs" | "megabyte" | "megabytes" | "mebibyte"
        | "mebibytes" => 1 << 20,
        "g" | "gb" | "gib" | "gig" | "gigs" | "gigabyte" | "gigabytes" | "gibibyte"
        | "gibibytes" | "giga" => 1 << 30,
        "t" | "tb" | "tib" | "tera" | "terabyte" | "terabytes" => 1 << 40,
        _ => return None,
    })
}

/// Words that count CPUs.
pub fn cpu_unit(word: &str) -> bool {
    matches!(
        word,
        "core"
            | "cores"
            | "cpu"
            | "cpus"
            | "vcpu"
            | "vcpus"
            | "processor"
            | "processors"
            | "thread"
            | "threads"
    )
}

/// An IPv4 address or network, as people write them in allow-lists: "10.1.2.3", "10.0.0.0/8".
fn is_ipv4ish(host: &str) -> bool {
    let addr = host.split_once('/').map_or(host, |(a, len)| {
        if !len.is_empty() && len.len() <= 2 && len.chars().all(|c| c.is_ascii_digit()) {
            a
        } else {
            ""
        }
    });
    addr.split('.').count() == 4
        && addr
            .split('.')
            .all(|o| !o.is_empty() && o.len() <= 3 && o.chars().all(|c| c.is_ascii_digit()))
}

fn is_address(chunk: &str) -> bool {
    if chunk.contains("://") {
        return true;
    }
    // an IPv4 address or network with no port: 10.1.2.3, 10.0.0.0/8
    if is_ipv4ish(chunk) {
        return true;
    }
    // any host with all ports or a range: example.org:*, 10.0.0.0/8:8000-8080
    if let Some((host, ports)) = chunk.rsplit_once(':')
        && (host.contains('.') || is_ipv4ish(host))
        && (ports == "*"
            || ports.split_once('-').is_some_and(|(lo, hi)| {
                !lo.is_empty()
                    && !hi.is_empty()
                    && lo.chars().chain(hi.chars()).all(|c| c.is_ascii_digit())
            }))
    {
        return true;
    }
    // host:port with a numeric port, e.g. 10.0.0.1:3128 or proxy.example.org:8080
    match chunk.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && host.contains('.')
                && !port.is_empty()
                && port.chars().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

/// Split a prompt into tokens. Number words become numbers; "4GB" becomes 4 and "gb".
pub fn tokenize(prompt: &str) -> Vec<Token> {
    let mut raw = Vec::new();
    for chunk in prompt.split_whitespace() {
        let trimmed = chunk.trim_matches(|c: char| "\"'`()[]{}!?".contains(c));
        let mut end_comma = false;
        let mut core = trimmed;
        while core.ends_with([',', ';', '.', ':']) {
            end_comma = true;
            core = &core[..core.len() - 1];
        }
        if core.is_empty() {
            if end_comma {
                raw.push(Token::Comma);
            }
            continue;
        }
        if is_address(core) {
            raw.push(Token::Address(core.to_string()));
        } else {
            let lower = joined(&core.to_lowercase());
            for (i, piece) in lower.split(['/', ',', ';']).enumerate() {
                if i > 0 {
                    raw.push(Token::Comma);
                }
                split_piece(piece, &mut raw);
            }
        }
        if end_comma {
            raw.push(Token::Comma);
        }
    }
    numbers(raw)
}

/// Hyphenated words that mean one thing, kept whole before hyphens split.
fn joined(word: &str) -> String {
    match word {
        "one-off" | "one-shot" | "single-use" | "one-time" | "one-use" => "oneoff".into(),
        "air-gapped" | "air-gap" => "airgapped".into(),
        "throw-away" => "throwaway".into(),
        "e-book" | "e-books" => "ebook".into(),
        "use-and-throw" => "throwaway".into(),
        "long-lived" | "long-running" => "longlived".into(),
        "text-only" => "textonly".into(),
        "read-only" => "readonly".into(),
        w => w.to_string(),
    }
}

/// "4gb" -> 4, "gb"; "quad-core" -> "quad", "core"; keeps "c++", "node.js", "1.5".
fn split_piece(piece: &str, out: &mut Vec<Token>) {
    for part in piece.split('-') {
        if part.is_empty() {
            continue;
        }
        let digits_end = part
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
            .map(|(i, _)| i)
            .unwrap_or(part.len());
        let number = &part[..digits_end];
        // "4gb", "2x", "8g"; but "python3", "lua5.4" stay words (letters first).
        if number.chars().any(|c| c.is_ascii_digit())
            && let Ok(n) = number.trim_end_matches('.').parse::<f64>()
        {
            let rest = &part[digits_end..];
            // "0ad", "1password", "7zip": a name that starts with digits, not a quantity
            if !rest.is_empty() && !is_unit_word(rest) && rest != "x" {
                out.push(Token::Word(part.to_string()));
                continue;
            }
            out.push(Token::Number(n));
            if !rest.is_empty() {
                out.push(Token::Word(rest.to_string()));
            }
            continue;
        }
        out.push(Token::Word(part.to_string()));
    }
}

/// Turn number words into numbers: "four" -> 4, "twenty four" -> 24, "half a" -> 0.5,
/// "one and a half" -> 1.5, "a gig" -> 1 "gig" (only before a unit).
fn numbers(tokens: Vec<Token>) -> Vec<Token> {
    let mut out: Vec<Token> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    let word = |i: usize| tokens.get(i).and_then(Token::word);
    while i < tokens.len() {
        let w = word(i);
        // "half a gig", "half a core", "half of a gig"
        if w == Some("half") {
            let mut j = i + 1;
            if word(j) == Some("of") {
                j += 1;
            }
            if matches!(word(j), Some("a" | "an")) {
                j += 1;
            }
            if word(j).is_some_and(is_unit_word) {
                out.push(Token::Number(0.5));
                i = j;
                continue;
            }
        }
        let value = match (w, tokens.get(i)) {
            (Some("a" | "an"), _) => {
                // only "a gig" / "a core"; "a python box" keeps its article
                if word(i + 1).is_some_and(is_unit_word) {
                    Some(1.0)
                } else {
                    None
                }
            }
            (Some(w), _) => small_number(w),
            (None, Some(Token::Number(n))) => Some(*n),
            _ => None,
        };
        let Some(mut value) = value else {
            out.push(tokens[i].clone());
            i += 1;
            continue;
        };
        let mut j = i + 1;
        // "twenty four"
        if (20.0..100.0).contains(&value)
            && value % 10.0 == 0.0
            && let Some(n) = word(j).and_then(small_number).filter(|n| *n < 10.0)
        {
            value += n;
            j += 1;
        }
        // "one and a half", "2 and a half"
        if word(j) == Some("and")
            && matches!(word(j + 1), Some("a" | "an"))
            && word(j + 2) == Some("half")
        {
            value += 0.5;
            j += 3;
        }
        // "a half" after a number is covered above; "1 1/2" is not
        out.push(Token::Number(value));
        i = j;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nums(prompt: &str) -> Vec<f64> {
        tokenize(prompt)
            .into_iter()
            .filter_map(|t| match t {
                Token::Number(n) => Some(n),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn number_words() {
        assert_eq!(nums("four gigs"), [4.0]);
        assert_eq!(nums("half a gig"), [0.5]);
        assert_eq!(nums("2 cores"), [2.0]);
        assert_eq!(nums("1.5 CPUs"), [1.5]);
        assert_eq!(nums("4GB, 2 cores."), [4.0, 2.0]);
        assert_eq!(nums("one and a half gigs"), [1.5]);
        assert_eq!(nums("twenty four gigs"), [24.0]);
        assert_eq!(nums("a gig of ram"), [1.0]);
        assert_eq!(nums("a python box"), Vec::<f64>::new());
        assert_eq!(nums("quad-core"), [4.0]);
    }

    #[test]
    fn addresses_and_units() {
        let t = tokenize("behind a proxy at 10.0.0.1:3128, with 512MB.");
        assert!(t.contains(&Token::Address("10.0.0.1:3128".into())));
        for address in [
            "10.0.0.0/8",
            "192.168.1.7",
            "example.org:*",
            "10.0.0.0/8:8000-8080",
        ] {
            let t = tokenize(&format!("only {address}, please"));
            assert!(
                t.contains(&Token::Address(address.into())),
                "{address}: {t:?}"
            );
        }
        // numbers and dotted words stay what they were
        assert_eq!(tokenize("1.5 cores")[0], Token::Number(1.5));
        assert_eq!(tokenize("node.js")[0], Token::Word("node.js".into()));
        assert!(t.contains(&Token::Word("mb".into())));
        assert!(t.contains(&Token::Comma));
        let t = tokenize("C++ and node.js");
        assert_eq!(t[0], Token::Word("c++".into()));
        assert_eq!(t[2], Token::Word("node.js".into()));
    }
}
