//! Placeholder: written by the next commit.

fn main() {}
