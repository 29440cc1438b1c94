//! The campaign file (TOML): its keys, defaults and validation.
use std::str::FromStr;

/// `concurrency = 8` or `concurrency = "auto"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    Fixed(usize),
    Auto,
}

impl FromStr for Concurrency {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "auto" => Ok(Concurrency::Auto),
            n => match n.parse::<usize>() {
                Ok(0) | Err(_) => Err(format!("invalid concurrency `{s}`: expected a number from 1 or `auto`")),
                Ok(n) => Ok(Concurrency::Fixed(n)),
            },
        }
    }
}
