/// The version printed by `conjure --version` (semantic versioning; raised with each release
/// of the checkpoint format or command-line interface).
public let conjureVersion = "0.3.0 (checkpoint format conjure.checkpoint.v1)"
