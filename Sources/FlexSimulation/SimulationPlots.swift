import Foundation

/// Hand-written SVG line charts and heatmaps.
public enum SVGPlot {
    static let width = 760.0, height = 440.0
    static let left = 70.0, right = 190.0, top = 50.0, bottom = 56.0
    static let colours: [SimulationStrategy: String] = [
        .flex: "#d62728", .greedy: "#1f77b4", .random: "#2ca02c", .fedavgDense: "#7f7f7f",
        .fedavgDenseMatched: "#9467bd",
    ]

    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
    static func n(_ x: Double) -> String { String(format: "%.1f", x) }

    static func header(_ title: String, subtitle: String, w: Double = width, h: Double = height) -> String {
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(w))" height="\(Int(h))" viewBox="0 0 \(Int(w)) \(Int(h))" font-family="Helvetica, Arial, sans-serif" font-size="12">
        <rect x="0" y="0" width="\(Int(w))" height="\(Int(h))" fill="white"/>
        <text x="\(n(w / 2))" y="18" text-anchor="middle" font-size="14" font-weight="bold">\(esc(title))</text>
        <text x="\(n(w / 2))" y="34" text-anchor="middle" font-size="11" fill="#444">\(esc(subtitle))</text>

        """
    }

    /// Per strategy: mean over seeds per round; min–max over seeds as a band.
    struct Series { var strategy: SimulationStrategy; var rounds: [Int]; var mean: [Double]; var lo: [Double]; var hi: [Double] }

    static func series(_ rows: [SimulationRound], _ strategies: [SimulationStrategy], _ value: (SimulationRound) -> Double) -> [Series] {
        strategies.compactMap { s in
            let mine = rows.filter { $0.strategy == s }
            let rounds = Array(Set(mine.map(\.round))).sorted()
            if rounds.isEmpty { return nil }
            var mean: [Double] = [], lo: [Double] = [], hi: [Double] = []
            for r in rounds {
                let v = mine.filter { $0.round == r }.map(value)
                mean.append(v.reduce(0, +) / Double(v.count)); lo.append(v.min()!); hi.append(v.max()!)
            }
            return Series(strategy: s, rounds: rounds, mean: mean, lo: lo, hi: hi)
        }
    }

    static func chart(_ series: [Series], title: String, subtitle: String, yLabel: String, yMin: Double, yMax: Double, log: Bool,
                      target: Double? = nil) -> String {
        let pw = width - left - right, ph = height - top - bottom
        let maxRound = series.flatMap(\.rounds).max() ?? 1
        func x(_ r: Int) -> Double { left + pw * (maxRound > 1 ? Double(r - 1) / Double(maxRound - 1) : 0.5) }
        func ty(_ v: Double) -> Double { log ? log10(max(v, yMin)) : v }
        let a = ty(yMin), b = ty(yMax)
        func y(_ v: Double) -> Double { top + ph * (1 - (min(max(ty(v), a), b) - a) / max(b - a, 1e-12)) }
        var s = header(title, subtitle: subtitle)
        s += "<g id=\"axes\" stroke=\"#333\" stroke-width=\"1\">\n"
        s += "<line x1=\"\(n(left))\" y1=\"\(n(top + ph))\" x2=\"\(n(left + pw))\" y2=\"\(n(top + ph))\"/>\n"
        s += "<line x1=\"\(n(left))\" y1=\"\(n(top))\" x2=\"\(n(left))\" y2=\"\(n(top + ph))\"/>\n</g>\n"
        // y ticks
        var ticks: [(Double, String)] = []
        if log {
            var e = Int(a.rounded(.down))
            while Double(e) <= b + 1e-9 { ticks.append((pow(10, Double(e)), e >= 0 ? String(Int(pow(10, Double(e)))) : "1e\(e)")); e += 1 }
        } else {
            let step = niceStep((yMax - yMin) / 5)
            var v = (yMin / step).rounded(.up) * step
            while v <= yMax + 1e-9 { ticks.append((v, String(format: step < 0.1 ? "%.2f" : "%.1f", v))); v += step }
        }
        s += "<g id=\"yticks\" font-size=\"11\">\n"
        for (v, label) in ticks {
            s += "<line x1=\"\(n(left))\" y1=\"\(n(y(v)))\" x2=\"\(n(left + pw))\" y2=\"\(n(y(v)))\" stroke=\"#e4e4e4\"/>"
            s += "<text x=\"\(n(left - 6))\" y=\"\(n(y(v) + 4))\" text-anchor=\"end\">\(label)</text>\n"
        }
        s += "</g>\n<g id=\"xticks\" font-size=\"11\">\n"
        let xstep = max(1, Int(niceStep(Double(maxRound) / 8)))
        var r = 1
        while r <= maxRound {
            s += "<line x1=\"\(n(x(r)))\" y1=\"\(n(top + ph))\" x2=\"\(n(x(r)))\" y2=\"\(n(top + ph + 4))\" stroke=\"#333\"/>"
            s += "<text x=\"\(n(x(r)))\" y=\"\(n(top + ph + 17))\" text-anchor=\"middle\">\(r)</text>\n"
            r = r == 1 && xstep > 1 ? xstep : r + xstep
        }
        s += "</g>\n"
        s += "<text x=\"\(n(left + pw / 2))\" y=\"\(n(height - 14))\" text-anchor=\"middle\">round</text>\n"
        s += "<text transform=\"translate(18 \(n(top + ph / 2))) rotate(-90)\" text-anchor=\"middle\">\(esc(yLabel))</text>\n"
        if let t = target {
            s += "<line x1=\"\(n(left))\" y1=\"\(n(y(t)))\" x2=\"\(n(left + pw))\" y2=\"\(n(y(t)))\" stroke=\"#555\" stroke-dasharray=\"5 4\"/>"
            s += "<text x=\"\(n(left + pw - 4))\" y=\"\(n(y(t) - 5))\" text-anchor=\"end\" font-size=\"11\" fill=\"#555\">target \(String(format: "%.2f", t))</text>\n"
        }
        for ser in series {
            let c = colours[ser.strategy] ?? "#000"
            if ser.lo != ser.hi {
                let upper = zip(ser.rounds, ser.hi).map { "\(n(x($0))),\(n(y($1)))" }
                let lower = zip(ser.rounds, ser.lo).reversed().map { "\(n(x($0))),\(n(y($1)))" }
                s += "<polygon class=\"band\" points=\"\((upper + lower).joined(separator: " "))\" fill=\"\(c)\" fill-opacity=\"0.15\" stroke=\"none\"/>\n"
            }
            let pts = zip(ser.rounds, ser.mean).map { "\(n(x($0))),\(n(y($1)))" }.joined(separator: " ")
            s += "<polyline class=\"series\" data-strategy=\"\(ser.strategy.rawValue)\" points=\"\(pts)\" fill=\"none\" stroke=\"\(c)\" stroke-width=\"2\"/>\n"
        }
        // legend
        s += "<g id=\"legend\">\n"
        for (i, ser) in series.enumerated() {
            let ly = top + 10 + Double(i) * 20
            let c = colours[ser.strategy] ?? "#000"
            s += "<line x1=\"\(n(left + pw + 16))\" y1=\"\(n(ly))\" x2=\"\(n(left + pw + 40))\" y2=\"\(n(ly))\" stroke=\"\(c)\" stroke-width=\"3\"/>"
            s += "<text x=\"\(n(left + pw + 46))\" y=\"\(n(ly + 4))\">\(ser.strategy.rawValue)</text>\n"
        }
        let notes = series.contains { $0.lo != $0.hi } ? ["line: mean over seeds", "band: min–max over seeds"] : ["one seed"]
        for (i, note) in notes.enumerated() {
            s += "<text x=\"\(n(left + pw + 16))\" y=\"\(n(top + 14 + Double(series.count + i) * 20))\" font-size=\"10\" fill=\"#555\">\(esc(note))</text>\n"
        }
        s += "</g>\n</svg>\n"
        return s
    }

    static func niceStep(_ raw: Double) -> Double {
        guard raw > 0 else { return 1 }
        let p = pow(10, (log10(raw)).rounded(.down))
        let f = raw / p
        return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p
    }

    public static func accuracy(_ rows: [SimulationRound], strategies: [SimulationStrategy], title: String, target: Double?) -> String {
        let ser = series(rows, strategies, \.testAccuracy)
        let lo = ser.flatMap(\.lo).min() ?? 0, hi = ser.flatMap(\.hi).max() ?? 1
        let yMin = max(0, (lo * 10).rounded(.down) / 10), yMax = min(1, (hi * 10).rounded(.up) / 10)
        return chart(ser, title: "Mean local test accuracy per round", subtitle: title, yLabel: "mean local test accuracy", yMin: yMin,
                     yMax: max(yMax, yMin + 0.1), log: false, target: target)
    }

    public static func loadCV(_ rows: [SimulationRound], strategies: [SimulationStrategy], title: String) -> String {
        let ser = series(rows, strategies, \.cv)
        let positive = ser.flatMap { $0.lo + $0.hi }.filter { $0 > 0 }
        let lo = max(positive.min() ?? 1e-3, 1e-4), hi = max(positive.max() ?? 1, lo * 10)
        return chart(ser, title: "Expert-load CV per round (log scale)", subtitle: title, yLabel: "load CV (std/mean), log scale",
                     yMin: pow(10, log10(lo).rounded(.down)), yMax: pow(10, log10(hi).rounded(.up)), log: true)
    }

    /// Expert × round: load / fair share (W/E) of one run, colour from white (0) through yellow (1)
    /// to dark red (≥ 3).
    public static func heatmap(_ rows: [SimulationRound], title: String, subtitle: String) -> String {
        let E = rows.first?.load.count ?? 1, R = rows.count
        let cellW = min(24.0, 560.0 / Double(max(R, 1))), cellH = min(22.0, 320.0 / Double(max(E, 1)))
        let pw = cellW * Double(R), ph = cellH * Double(E)
        let w = left + pw + 150, h = top + ph + bottom + 10
        var s = header(title, subtitle: subtitle, w: max(w, 640), h: h)
        s += "<g id=\"cells\">\n"
        for (j, r) in rows.enumerated() {
            let mean = Double(r.load.reduce(0, +)) / Double(max(E, 1))
            for e in 0..<E {
                let v = mean > 0 ? Double(r.load[e]) / mean : 0
                s += "<rect x=\"\(n(left + Double(j) * cellW))\" y=\"\(n(top + Double(e) * cellH))\" width=\"\(n(cellW))\" height=\"\(n(cellH))\" fill=\"\(colour(v))\"><title>round \(r.round), expert \(e): \(String(format: "%.2f", v))×</title></rect>\n"
            }
        }
        s += "</g>\n<g id=\"labels\" font-size=\"10\">\n"
        let ystep = max(1, E / 16)
        for e in stride(from: 0, to: E, by: ystep) {
            s += "<text x=\"\(n(left - 6))\" y=\"\(n(top + (Double(e) + 0.5) * cellH + 3))\" text-anchor=\"end\">\(e)</text>\n"
        }
        let xstep = max(1, Int(SVGPlot.niceStep(Double(R) / 10)))
        for (j, r) in rows.enumerated() where r.round == 1 || r.round % xstep == 0 {
            s += "<text x=\"\(n(left + (Double(j) + 0.5) * cellW))\" y=\"\(n(top + ph + 14))\" text-anchor=\"middle\">\(r.round)</text>\n"
        }
        s += "</g>\n"
        s += "<text x=\"\(n(left + pw / 2))\" y=\"\(n(top + ph + 34))\" text-anchor=\"middle\">round</text>\n"
        s += "<text transform=\"translate(24 \(n(top + ph / 2))) rotate(-90)\" text-anchor=\"middle\">expert</text>\n"
        // colour bar
        s += "<g id=\"colorbar\" font-size=\"10\">\n"
        let bx = left + pw + 30, bh = max(ph, 100)
        for i in 0..<30 {
            let v = 3 * (1 - Double(i) / 30)
            s += "<rect x=\"\(n(bx))\" y=\"\(n(top + bh * Double(i) / 30))\" width=\"14\" height=\"\(n(bh / 30 + 0.5))\" fill=\"\(colour(v))\"/>"
        }
        for v in [0.0, 1, 2, 3] {
            s += "<text x=\"\(n(bx + 20))\" y=\"\(n(top + bh * (1 - v / 3) + 4))\">\(v == 3 ? "≥3" : String(Int(v)))×</text>\n"
        }
        s += "</g>\n</svg>\n"
        return s
    }

    static func colour(_ v: Double) -> String {
        // stops: 0 white, 1 yellow-orange, 3 dark red
        let stops: [(Double, (Double, Double, Double))] = [(0, (255, 255, 255)), (0.5, (255, 237, 160)), (1, (254, 178, 76)),
                                                           (2, (227, 26, 28)), (3, (103, 0, 13))]
        let x = min(max(v, 0), 3)
        var k = 0
        while k < stops.count - 2 && x > stops[k + 1].0 { k += 1 }
        let (x0, c0) = stops[k], (x1, c1) = stops[k + 1]
        let t = (x - x0) / (x1 - x0)
        func mix(_ a: Double, _ b: Double) -> Int { Int((a + (b - a) * t).rounded()) }
        return String(format: "#%02x%02x%02x", mix(c0.0, c1.0), mix(c0.1, c1.1), mix(c0.2, c1.2))
    }
}
