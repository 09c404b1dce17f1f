// The `conjure` executable: everything lives in the ConjureCLI library (one file per verb),
// so that parsing and commands can be tested in-process.
import ConjureCLI

Conjure.main()
