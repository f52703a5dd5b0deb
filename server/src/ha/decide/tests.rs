//! The decision core, table-driven through `check`.
