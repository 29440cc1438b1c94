//! The campaign's input, read and located: the campaign file, the recipients CSV, the rates and
//! send hours they name, and the problems found in them.

pub mod config;
pub mod files;
pub mod hours;
pub mod problem;
pub mod rate;
pub mod recipients;
pub mod rows;
