import CFlexSystem

/// Process memory figures from /proc/self/status (bytes; nil where unavailable).
public enum ProcessMemory {
    public static var peakRSS: Int? { let v = csys_peak_rss_bytes(); return v < 0 ? nil : Int(v) }
    public static var currentRSS: Int? { let v = csys_current_rss_bytes(); return v < 0 ? nil : Int(v) }
    /// Starts a new peak (VmHWM := VmRSS), so a later peak measures only what came after.
    @discardableResult public static func resetPeak() -> Bool { csys_reset_peak_rss() == 0 }
}
