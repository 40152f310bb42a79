//! Range estimators (SPEC §3). PLACEHOLDER: being implemented.
