//! Wire types for the HA engine: switches, providers, timing settings, host HA states, transitions, incidents.

