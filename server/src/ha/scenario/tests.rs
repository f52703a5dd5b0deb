//! Every scenario file passes; the randomized run; each invariant check can fail.
