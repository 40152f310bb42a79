//! One module per subcommand: arguments become a configuration value, then the libraries work.

pub mod formats;
