import Foundation
import ConjureData
import ConjureModels
import ConjureOptim
import ConjureMetrics

/// SIGINT/SIGTERM during training: finish the current step, write a checkpoint, stop.
enum Interrupt {
    nonisolated(unsafe) static var flag: sig_atomic_t = 0
    static var requested: Bool { flag != 0 }

    static func install() {
        flag = 0
        signal(SIGINT) { _ in Interrupt.flag = 1 }
        signal(SIGTERM) { _ in Interrupt.flag = 1 }
    }

    static func uninstall() {
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}

