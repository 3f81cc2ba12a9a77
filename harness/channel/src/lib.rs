//! Sans-IO data channel (placeholder until the state machine lands).
