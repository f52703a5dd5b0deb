//! Wire types for mail: SMTP settings, the test-mail result, which alert kinds are mailed.

