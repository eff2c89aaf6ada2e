"""The R side of the benchmarks: one Rscript process fits every model and prints
``key<TAB>seconds<TAB>logLik<TAB>lme4 version`` per model.

Each line of the models file is ``key<TAB>csv<TAB>formula[<TAB>more fields]``;
the R expression that fits one model sees ``form``, ``d`` (the data as read)
and ``f`` (the line's fields).
"""

from __future__ import annotations

import shutil
import subprocess

R_TEMPLATE = r"""
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
lines <- readLines(args[1])
reps <- as.integer(args[2])
out <- character(0)
for (line in lines) {
  f <- strsplit(line, "\t")[[1]]
  key <- f[1]; csv <- f[2]; form <- as.formula(f[3])
  d <- read.csv(csv)
  best <- Inf
  for (i in seq_len(reps)) {
    t0 <- proc.time()[["elapsed"]]
    m <- FIT
    best <- min(best, proc.time()[["elapsed"]] - t0)
  }
  out <- c(out, sprintf("%s\t%.6f\t%.6f\t%s", key, best, as.numeric(logLik(m)),
                        paste(as.character(packageVersion("lme4")))))
}
writeLines(out)
"""


def run_rscript(fit, spec_lines, repeat, folder, what):
    """{key: (seconds, logLik)} and a note, or (None, why) without R and lme4.

    ``fit`` is the R expression that fits one model, timed best of
    ``repeat``; ``what`` names the R function in messages (``"lmer"``,
    ``"glmer"``).
    """
    rscript = shutil.which("Rscript")
    if rscript is None:
        return None, "Rscript not found"
    if subprocess.run([rscript, "-e", "library(lme4)"], capture_output=True).returncode:
        return None, "R's lme4 is not installed"
    script = folder / "bench.R"
    script.write_text(R_TEMPLATE.replace("FIT", fit))
    spec = folder / "models.tsv"
    spec.write_text("".join(line + "\n" for line in spec_lines))
    proc = subprocess.run([rscript, str(script), str(spec), str(repeat)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return None, f"{what} failed: " + proc.stderr.strip()[-300:]
    out, version = {}, ""
    for line in proc.stdout.strip().splitlines():
        key, secs, llf, version = line.split("\t")
        out[key] = (float(secs), float(llf))
    return out, f"lme4 {version}"
