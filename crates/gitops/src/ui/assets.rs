//! The UI's stylesheet and script, compiled into the binary.

/// `/assets/app.css`.
pub const CSS: &str = include_str!("assets/app.css");
/// `/assets/app.js`.
pub const JS: &str = include_str!("assets/app.js");
