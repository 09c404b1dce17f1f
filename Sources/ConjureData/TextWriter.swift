import Foundation

/// Writes generated text samples to a UTF-8 file, atomically (see ``AtomicFile``).
public enum TextSampleWriter {
    /// How samples are laid out in the file.
    public enum Layout: Sendable, Equatable {
        /// One sample a line, each followed by `\n` (lines mode). A sample holding `\n` or `\r`
        /// is an error, since it would read back as two samples.
        case lines
        /// Samples written as they are, separated by `separator` and ended by `\n` (stream-mode
        /// blocks, which hold line ends of their own).
        case blocks(separator: String)

        /// Stream-mode default: a blank line, a line of ten `=`, a blank line.
        public static let defaultBlocks = Layout.blocks(separator: "\n\n==========\n\n")
    }

    /// Writes the samples.
    ///
    /// - Parameters:
    ///   - samples: the texts.
    ///   - path: the destination (replaced atomically).
    ///   - layout: ``Layout/lines`` (default) or ``Layout/blocks(separator:)``.
    ///   - createDirectories: create missing parent directories.
    /// - Throws: ``DataError`` naming `path` for a multi-line sample in lines layout (sample
    ///   index given) or any I/O failure; nothing is written then.
    public static func write(_ samples: [String], to path: String, layout: Layout = .lines,
                             createDirectories: Bool = false) throws {
        var text = ""
        switch layout {
        case .lines:
            for (i, s) in samples.enumerated() {
                if s.unicodeScalars.contains(where: { $0 == "\n" || $0 == "\r" }) {
                    throw DataError(file: path, location: "sample \(i)", problem: "a sample holds a line end, so one sample a line is impossible",
                                    hint: "write stream-mode samples as blocks")
                }
                text += s
                text += "\n"
            }
        case .blocks(let separator):
            text = samples.joined(separator: separator)
            if !samples.isEmpty { text += "\n" }
        }
        try AtomicFile.write(Data(text.utf8), to: path, createDirectories: createDirectories)
    }
}
