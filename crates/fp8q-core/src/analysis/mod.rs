//! Analytical error study (SPEC §4). PLACEHOLDER: being implemented.
