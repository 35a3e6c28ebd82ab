import FlexEdge
import FlexModel
import FlexTensor

/// Text columns: left-aligned name, right-aligned numbers.
func pad(_ s: String, _ width: Int, right: Bool = false) -> String {
    var s = s
    while s.utf8.count < width { s = right ? " " + s : s + " " }
    return s
}

func mib(_ bytes: Int) -> String { Format.fixed(Double(bytes) / 1_048_576, 3) }

func runTables(_ o: MemprofOptions) throws(EdgeError) -> Int32 {
    let p = o.profile
    let c = p.config
    Console.out("flexmoe-memprof: board \(o.board.name) (\(o.board.title), \(o.board.ramMiB) MiB RAM), budget \(Format.bytes(p.budget)), model d\(c.inputDim) h\(c.hidden) f\(c.expertHidden) K\(c.classes) E\(c.experts), experts stored \(p.storage.name), updates \(p.update.name)")
    if o.runRound {
        let profile = try MemoryProfiler.run(p)
        printProfile(profile)
        if let path = o.svgPath {
            if let problem = Console.writeFile(path, svg(profile)) {
                throw .usage("--svg: cannot write \(path): \(problem)")
            }
            Console.out("wrote \(path)")
        }
    }
    printWhatIf(o)
    return 0
}

func printProfile(_ profile: MemoryProfile) {
    let plan = profile.plan
    Console.out("")
    Console.out("plan: k_c \(plan.kc) + \(plan.warmSlots) warm slots, batch \(plan.batch); arena \(Format.bytes(profile.arenaCapacity)) of the \(Format.bytes(plan.budget)) budget (\(Format.bytes(DevicePlan.outsideArenaAllowance)) kept for code, libraries and stacks)")
    Console.out("")
    Console.out(pad("component", 38) + pad("planned", 12, right: true) + pad("decode", 12, right: true)
                + pad("train", 12, right: true) + pad("encode", 12, right: true) + pad("peak used", 12, right: true))
    var totalUsed = [0, 0, 0]
    for row in profile.rows {
        var line = pad(row.name, 38) + pad(String(row.planned), 12, right: true)
        for phase in 0..<3 {
            line += pad(String(row.used[phase]), 12, right: true)
            totalUsed[phase] += row.used[phase]
        }
        Console.out(line + pad(String(row.peak), 12, right: true))
    }
    let planned = profile.rows.reduce(0) { $0 + $1.planned }
    Console.out(pad("arena total", 38) + pad(String(planned), 12, right: true) + pad(String(totalUsed[0]), 12, right: true)
                + pad(String(totalUsed[1]), 12, right: true) + pad(String(totalUsed[2]), 12, right: true)
                + pad(String(totalUsed.max()!), 12, right: true))
    Console.out("arena accounting: \(profile.arenaUsed) bytes carved of \(profile.arenaCapacity) (plan \(plan.book.total))")
    Console.out("")
    var rssLine = "process peak RSS (VmHWM):"
    for (i, phase) in MemoryProfile.phases.enumerated() {
        rssLine += "  after \(phase) " + (profile.peakRSSAfterPhase[i].map { Format.bytes($0) } ?? "n/a")
    }
    Console.out(rssLine)
    if let measured = profile.measuredPeakRSS, let predicted = profile.predictedPeakRSS, let rest = profile.unaccounted,
       let baseline = profile.baselineRSS {
        let error = Double(measured - predicted) / Double(predicted) * 100
        Console.out("predicted peak RSS \(Format.bytes(predicted)) (\(Format.bytes(baseline)) before the arena + arena), measured \(Format.bytes(measured)) (\(error >= 0 ? "+" : "")\(Format.fixed(error, 1))%)")
        Console.out("outside the arena: \(Format.bytes(rest)) (code, libraries, stacks, heap) — allowance \(Format.bytes(DevicePlan.outsideArenaAllowance))")
        Console.out("peak RSS \(measured < plan.budget ? "is below" : "EXCEEDS") the \(Format.bytes(plan.budget)) budget")
    }
    Console.out("round: training loss \(Format.fixed(Double(profile.trainingLoss), 4)), report \(profile.reportBytes) bytes")
}

func printWhatIf(_ o: MemprofOptions) {
    let p = o.profile
    let samples = 500
    Console.out("")
    Console.out("what-if: largest k_c / batch per budget (model d\(p.config.inputDim) h\(p.config.hidden) f\(p.config.expertHidden) K\(p.config.classes) E\(p.config.experts), \(samples) local samples, preferred batch \(p.batch))")
    var header = pad("storage", 12)
    for mib in MemoryProfiler.whatIfBudgetsMiB { header += pad("\(mib) MiB", 12, right: true) }
    Console.out(header)
    let rows = MemoryProfiler.whatIf(config: p.config, update: p.update, samples: samples, batch: p.batch)
    for storage in [DType.int8Block, .fp16, .fp32] {
        var line = pad(storage.name, 12)
        for w in rows where w.storage == storage {
            line += pad(w.kc.map { "\($0) / \(w.batch!)" } ?? "-", 12, right: true)
        }
        Console.out(line)
    }
    Console.out("")
    Console.out("board profiles (default budget, default k_c, storage \(p.storage.name)):")
    for check in MemoryProfiler.boardChecks(config: p.config, storage: p.storage, update: p.update, samples: samples, batch: p.batch) {
        let b = check.board
        let verdict = check.fits ? "fits" : "DOES NOT FIT (holds k_c \(check.kc.map { String($0) } ?? "0"))"
        Console.out("  " + pad(b.name, 12) + pad("\(b.defaultBudgetMiB) MiB", 10, right: true) + pad("k_c \(b.defaultKc)", 8, right: true) + "  " + verdict)
    }
}

func runJSON(_ o: MemprofOptions) -> Int32 {
    var json = "{\"budget\":\(o.profile.budget),\"board\":\"\(o.board.name)\",\"storage\":\"\(o.profile.storage.name)\""
    if o.runRound {
        let profile: MemoryProfile
        do throws(EdgeError) {
            profile = try MemoryProfiler.run(o.profile)
        } catch {
            Console.error(error.message, program: "flexmoe-memprof")
            return 2
        }
        let plan = profile.plan
        json += ",\"kc\":\(plan.kc),\"warm_slots\":\(plan.warmSlots),\"batch\":\(plan.batch),\"arena_bytes\":\(profile.arenaCapacity)"
        json += ",\"arena_used\":\(profile.arenaUsed),\"components\":["
        for (i, row) in profile.rows.enumerated() {
            json += (i == 0 ? "" : ",") + "{\"name\":\"\(row.name)\",\"planned\":\(row.planned),\"decode\":\(row.used[0]),\"train\":\(row.used[1]),\"encode\":\(row.used[2]),\"peak\":\(row.peak)}"
        }
        json += "],\"peak_rss\":[" + profile.peakRSSAfterPhase.map { $0.map { String($0) } ?? "null" }.joined(separator: ",") + "]"
        json += ",\"baseline_rss\":\(profile.baselineRSS.map { String($0) } ?? "null")"
        json += ",\"predicted_peak_rss\":\(profile.predictedPeakRSS.map { String($0) } ?? "null")"
        json += ",\"unaccounted\":\(profile.unaccounted.map { String($0) } ?? "null")"
        json += ",\"report_bytes\":\(profile.reportBytes)"
    }
    json += ",\"what_if\":["
    let rows = MemoryProfiler.whatIf(config: o.profile.config, update: o.profile.update, samples: 500, batch: o.profile.batch)
    for (i, w) in rows.enumerated() {
        json += (i == 0 ? "" : ",") + "{\"budget_mib\":\(w.budgetMiB),\"storage\":\"\(w.storage.name)\",\"kc\":\(w.kc.map { String($0) } ?? "null"),\"batch\":\(w.batch.map { String($0) } ?? "null")}"
    }
    json += "],\"boards\":["
    let checks = MemoryProfiler.boardChecks(config: o.profile.config, storage: o.profile.storage, update: o.profile.update, samples: 500, batch: o.profile.batch)
    for (i, check) in checks.enumerated() {
        json += (i == 0 ? "" : ",") + "{\"board\":\"\(check.board.name)\",\"fits\":\(check.fits),\"kc\":\(check.kc.map { String($0) } ?? "null")}"
    }
    Console.out(json + "]}")
    return 0
}

/// Stacked bars, one per phase, one segment per component in use.
func svg(_ profile: MemoryProfile) -> String {
    let palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac", "#86bcb6", "#d37295"]
    let width = 760, height = 420, left = 70, top = 40, barWidth = 110, plotHeight = 300
    let maxTotal = max(1, (0..<3).map { phase in profile.rows.reduce(0) { $0 + $1.used[phase] } }.max()!)
    var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" font-family=\"sans-serif\" font-size=\"12\">\n"
    s += "<text x=\"\(left)\" y=\"20\" font-size=\"14\">bytes in use per phase (arena \(Format.bytes(profile.arenaCapacity)), k_c \(profile.plan.kc), batch \(profile.plan.batch))</text>\n"
    // Components are grouped: all cache slots share one colour.
    var names: [String] = []
    for row in profile.rows {
        let name = row.name.hasPrefix("expert cache slot") ? "expert cache" : row.name
        if !names.contains(name) { names.append(name) }
    }
    for (phase, label) in MemoryProfile.phases.enumerated() {
        let x = left + phase * (barWidth + 40)
        var y = top + plotHeight
        for (i, name) in names.enumerated() {
            let bytes = profile.rows.filter { ($0.name.hasPrefix("expert cache slot") ? "expert cache" : $0.name) == name }
                .reduce(0) { $0 + $1.used[phase] }
            if bytes == 0 { continue }
            let h = max(1, bytes * plotHeight / maxTotal)
            y -= h
            s += "<rect x=\"\(x)\" y=\"\(y)\" width=\"\(barWidth)\" height=\"\(h)\" fill=\"\(palette[i % palette.count])\"><title>\(name): \(bytes) bytes</title></rect>\n"
        }
        s += "<text x=\"\(x + barWidth / 2)\" y=\"\(top + plotHeight + 18)\" text-anchor=\"middle\">\(label)</text>\n"
        let total = profile.rows.reduce(0) { $0 + $1.used[phase] }
        s += "<text x=\"\(x + barWidth / 2)\" y=\"\(y - 4)\" text-anchor=\"middle\">\(Format.bytes(total))</text>\n"
    }
    for (i, name) in names.enumerated() {
        let y = top + 10 + i * 18
        s += "<rect x=\"\(left + 3 * (barWidth + 40))\" y=\"\(y - 10)\" width=\"12\" height=\"12\" fill=\"\(palette[i % palette.count])\"/>"
        s += "<text x=\"\(left + 3 * (barWidth + 40) + 18)\" y=\"\(y)\">\(name)</text>\n"
    }
    return s + "</svg>\n"
}
