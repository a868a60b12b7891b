"""The "Distil a student" tab: the visitor's file, a live training curve, and the new student answering
beside its teacher. Layout and wiring only; the work is training/service.py's, the training the CLI's.

The job's key lives in the visitor's browser (gr.BrowserState): a reload, or a second tab of the same
browser, finds the job again (status, stages, plan, curves, Cancel, the result). API (gradio_client;
listed by view_api, kept out of the MCP tools): /distill_start returns the job's key, /distill_status its
JSON state, /distill_cancel stops it or takes it out of the queue, /distill_adopt takes its student.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace

import gradio as gr

from demo.core.errors import UserError, whole_number
from demo.core.formatting import md_escape
from demo.measuring.bought import bought_heading
from demo.measuring.charts import recipe_comparison_chart, training_curves
from demo.measuring.scorecard import PAPER, STATE_ICONS
from demo.measuring.stats import Estimate
from demo.models.config import DistillationLink
from demo.serving.edge import handlers, session_of, user_errors
from demo.serving.evidence import load_evidence
from demo.serving.training.service import MAX_EPOCHS, JobRequest, TrainingService
from demo.serving.training.uploads import MIN_ROWS

POLL_SECONDS = 1.0
JOB_STORAGE_KEY = "distil-a-student-job"  # the browser's localStorage entry holding this visitor's job key
CLI_COMMAND = ("python -m demo.distill distill --teacher TEACHER --student-layers 3 --train-file TRAIN.csv "
               "--validation-file VAL.csv --epochs 2 --output-dir STUDENT --baselines")


def oauth_available() -> bool:
    """Sign in with Hugging Face: on a Space whose header has `hf_oauth: true`, where the Hub sets
    OAUTH_CLIENT_ID (gradio's login button needs it; elsewhere it would mock a login from this machine's token)."""
    return bool(os.environ.get("OAUTH_CLIENT_ID") and os.environ.get("SPACE_ID"))


def status_markdown(status: dict) -> str:
    """The job as the visitor follows it: state and time, the queue or each stage with its own steps and
    time, the plan it was started with, then the result (what distilling bought, the held-out score)."""
    state = status["state"]
    head = f"**Job {status['job_id']}** ({status['task']}): **{state}**"
    if state == "queued":
        head += (f": number **{status['position']}** in the queue, starting in about "
                 f"{max(status.get('remaining_s') or 0, 0) / 60:.0f} min once the jobs ahead finish "
                 f"(waited {status.get('waited_s', 0):.0f} s)")
    elif status.get("elapsed_s"):
        head += f" · {status['elapsed_s']:.0f} s elapsed"
        if state == "running" and status.get("remaining_s") is not None:
            head += f" · about {status['remaining_s']:.0f} s left"
    lines = [head, *stage_lines(status)]
    if status.get("plan"):
        lines.append(f"**Plan** (as started): {status['plan']}")
    lines += [f"- {md_escape(n)}" for n in status.get("notes") or []]
    if status.get("error"):
        lines.append(f"❌ {md_escape(status['error'])}")
    m = status.get("metrics")
    if m and (heading := bought_heading(m)):
        lines.append(heading)
    if m and "student_accuracy" in m:
        lines.append(held_out_line(m))
    return "\n\n".join(lines)


def stage_lines(status: dict) -> list[str]:
    """One line per stage: ✓ done, ▶ now; steps where it trains, and its own seconds."""
    stages = status.get("stages") or []
    if not stages:
        return []
    out = []
    for stage in stages:
        mark = "✓" if stage["done"] else ("▶" if status["state"] == "running" else "■")
        steps = f": step {stage['step']:,} of {stage['total_steps']:,}" if "total_steps" in stage else ""
        out.append(f"- {mark} {md_escape(stage['stage'])}{steps} · {stage['seconds']:.0f} s")
    return ["\n".join(out)]


def held_out_line(m: dict) -> str:
    """The student's score on the held-out tenth with its interval, and retention against DistilBERT's 97%
    in the scorecard's three states: ✅ only when the whole interval clears it."""
    intervals = m.get("intervals") or {}
    retention = intervals.get("retention")
    verdict, icon = "not yet known", STATE_ICONS["not yet known"]
    if retention and retention.get("value") is not None:
        verdict = Estimate(**retention).verdict(PAPER["retention"])
        icon = STATE_ICONS[verdict]
    score = (Estimate(**intervals["student_accuracy"]).text() if "student_accuracy" in intervals
             else f"{m['student_accuracy']:.4f}")
    kept = (Estimate(**retention).text(3) if retention else f"{m['retention']:.3f}")
    n = m.get("n_examples")
    return (f"{icon} On {n:,} held-out rows: student accuracy **{score}** against the teacher's "
            f"{m['teacher_accuracy']:.4f}; it keeps **{kept}** of the teacher's score ({verdict} against DistilBERT's "
            f"97%), {m['speedup']:.2f}× faster, {m['student_params']:,} parameters against {m['teacher_params']:,}.")


@dataclass
class TrainPanel:
    """The tab's components, for wiring."""

    job: gr.BrowserState
    task: gr.Dropdown
    layers: gr.Slider
    rows: gr.Number
    epochs: gr.Number
    baselines: gr.Checkbox
    augment: gr.Checkbox
    budget: gr.Number
    offer: gr.Button
    offered: gr.State
    upload: gr.File
    transfer: gr.File
    estimate: gr.Markdown
    start: gr.Button
    cancel: gr.Button
    status: gr.Markdown
    curves: gr.Plot
    result: gr.Group
    adopted: gr.Markdown
    restore: gr.Button
    take: gr.Button
    download: gr.File
    evidence: gr.Markdown
    comparison: gr.Plot
    card: gr.Markdown
    repo: gr.Textbox
    token: gr.Textbox
    dry_run: gr.Checkbox
    publish: gr.Button
    published: gr.Markdown
    timer: gr.Timer

    def request_fields(self) -> set:
        """The components a job is asked with: Gradio hands their values to a handler as one dict."""
        return {self.task, self.upload, self.transfer, self.layers, self.rows, self.epochs, self.baselines,
                self.augment, self.budget}

    def request(self, values: dict) -> JobRequest:
        """The page's fields, by name, as the service's request (each value as the page sent it)."""
        return JobRequest(task=values[self.task], upload=values[self.upload], transfer=values.get(self.transfer),
                          layers=values[self.layers], rows=values[self.rows], epochs=values[self.epochs],
                          baselines=bool(values[self.baselines]), augment=bool(values[self.augment]),
                          budget_minutes=values[self.budget])


def job_key_state() -> gr.BrowserState:
    """This browser's job key: outlives a reload, shared by the browser's tabs (the page makes it outside
    its tabs, so that it has read the browser's storage when the page's load event runs)."""
    return gr.BrowserState(None, storage_key=JOB_STORAGE_KEY)


def build_tab(service: TrainingService, page_timer: gr.Timer,
              job: gr.BrowserState | None = None) -> Callable[[gr.Blocks], None] | None:
    """page_timer: the page's status poll, woken when a job's student is adopted (the task tab's status
    line then names it); job: the page's job_key_state(). Returns what the page calls to find a visitor's
    job again when it loads."""
    gr.Markdown("Distil your own student from a task's teacher, here: upload labelled rows (CSV, TSV or JSON with a "
                "text and a label column; for fill-mask a .txt file, one text per line), pick the student's size "
                "and a budget, and watch it learn. It runs the project's own `python -m demo.distill distill` in a "
                "separate process; when it is done, the new student answers in the task's tab beside its teacher.")
    if not service.enabled:
        gr.Markdown("Training is **off** in this app: it is served on a public address. Its operator can turn it "
                    "on with `python app.py --allow-training` (or `ALLOW_TRAINING=1`). The same from a shell:\n\n"
                    f"```bash\n{CLI_COMMAND}\n```", elem_id="train-off")
        return None
    panel = layout(service, job if job is not None else job_key_state())
    h = TrainHandlers(service, panel, page_timer)
    wire(panel, h)
    return lambda page: page.load(h.reattach, inputs=panel.job, outputs=reattach_outputs(panel),
                                  api_visibility="private", show_progress="hidden")


def layout(service: TrainingService, job: gr.BrowserState) -> TrainPanel:
    tasks = service.registry.config.tasks
    with gr.Row():
        task = gr.Dropdown(tasks, value=tasks[0] if tasks else None, label="Task (its teacher is the one loaded)",
                           elem_id="train-task")
        layers = gr.Slider(1, 11, value=3, step=1, label="Student layers", elem_id="train-layers")
        # no minimum/maximum here: the service checks them (a refusal in gradio would keep the upload)
        rows = gr.Number(min(4000, service.limits.max_rows), precision=0,
                         label=f"Rows to learn from ({MIN_ROWS} to {service.limits.max_rows:,})", elem_id="train-rows")
        epochs = gr.Number(2, precision=0, label=f"Epochs (1 to {MAX_EPOCHS})", elem_id="train-epochs")
        baselines = gr.Checkbox(True, label="Also train this student on your labels alone (and layer dropping): "
                                "what distilling bought", elem_id="train-baselines")
    augment, budget = recipe_row(service)
    with gr.Row():
        upload = gr.File(label="Labelled file (or .txt for fill-mask)", type="filepath", elem_id="train-file")
        transfer = gr.File(label="Optional: unlabelled text of your domain (.txt), learnt from the teacher's answers",
                           type="filepath", elem_id="train-transfer")
    estimate = gr.Markdown(elem_id="train-estimate")
    offer = gr.Button(visible=False, size="sm", elem_id="train-offer")  # the budget that runs the whole recipe
    offered = gr.State(None)  # its minutes, as the plan computed them
    with gr.Row():
        start = gr.Button("Start distilling", variant="primary", elem_id="train-start")
        cancel = gr.Button("Cancel", variant="stop", elem_id="train-cancel")
    status = gr.Markdown(elem_id="train-status")
    curves = gr.Plot(label="Training curves (live)", elem_id="train-curves")
    with gr.Group(visible=False) as result:
        adopted = gr.Markdown(elem_id="train-adopted")
        with gr.Row():
            restore = gr.Button("Switch my task tab back to its configured student", size="sm",
                                elem_id="train-restore")
            take = gr.Button("Use this job's student in my task tab again", size="sm", elem_id="train-take")
        download = gr.File(label="The student (model, tokenizer, card, metrics, training code)",
                           elem_id="train-download")
        evidence = gr.Markdown(elem_id="train-evidence")
        comparison = gr.Plot(label="Teacher, this student and its baselines", elem_id="train-comparison")
        with gr.Accordion("The student's model card", open=False):
            card = gr.Markdown(elem_id="train-card")
        with gr.Accordion("Publish to the Hub", open=False):
            if oauth_available():  # a Space with hf_oauth: the visitor signs in; no token is ever pasted
                gr.LoginButton(elem_id="train-login")
            repo = gr.Textbox(label="Repo id (you/name)", elem_id="train-repo")
            token = gr.Textbox(label="Hub token with write access (used once, never stored or shown)",
                               type="password", elem_id="train-token", visible=not oauth_available())
            dry_run = gr.Checkbox(True, label="Dry run: list the upload, send nothing", elem_id="train-dry-run")
            publish = gr.Button("Publish", size="sm", elem_id="train-publish")
            published = gr.Markdown(elem_id="train-published")
    timer = gr.Timer(POLL_SECONDS, active=False)
    return TrainPanel(job=job, task=task, layers=layers, rows=rows, epochs=epochs, baselines=baselines,
                      augment=augment, budget=budget, offer=offer, offered=offered, upload=upload, transfer=transfer,
                      estimate=estimate, start=start, cancel=cancel, status=status,
                      curves=curves, result=result, adopted=adopted, restore=restore, take=take, download=download,
                      evidence=evidence, comparison=comparison, card=card, repo=repo, token=token, dry_run=dry_run,
                      publish=publish, published=published, timer=timer)


def recipe_row(service: TrainingService) -> tuple[gr.Checkbox, gr.Number]:
    """The small-data recipe and the time budget the job is fitted to."""
    with gr.Row():
        augment = gr.Checkbox(True, label="Let the teacher label variants of your rows (masked, cut and swapped "
                              "words): the small-data recipe, fitted to the budget", elem_id="train-augment")
        budget = gr.Number(service.default_budget, elem_id="train-budget",
                           label=f"Time budget in minutes (0.5 to {service.limits.max_minutes:g})")
    return augment, budget


@handlers
class TrainHandlers:
    """The tab's event handlers, each through the service; a job is acted on with the key this browser holds."""

    def __init__(self, service: TrainingService, panel: TrainPanel, page_timer: gr.Timer):
        self.service, self.p, self.page_timer = service, panel, page_timer

    def estimate(self, values: dict):
        """The plan, and a button that sets the budget which runs the whole recipe, where this one cuts it."""
        no_offer = gr.update(visible=False), None
        asked = self.p.request(values)
        if not asked.upload:  # also once Start has read and emptied the upload: no plan for rows nobody gave
            return ("Upload your file: the job is then fitted to its rows and your time budget, and the plan shows "
                    "here."), *no_offer
        try:
            checked = replace(asked, rows=whole_number(asked.rows, "rows", MIN_ROWS, self.service.limits.max_rows),
                              epochs=whole_number(asked.epochs, "epochs", 1, MAX_EPOCHS),
                              layers=whole_number(asked.layers, "layers", 1, 48))
            text, offer = self.service.estimate_and_offer(checked)
        except UserError as exc:
            return f"⚠️ {md_escape(str(exc))}", *no_offer
        if offer is None:
            return text, *no_offer
        return text, gr.update(value=f"Use {offer:g} min: the whole recipe", visible=True), offer

    def take_offer(self, minutes: float | None):
        """The offered budget into the budget field (whose change plans the job again)."""
        return gr.update() if minutes is None else minutes

    def start(self, values: dict, request: gr.Request):
        started = self.service.start(session_of(request), self.p.request(values), held_key=values[self.p.job])
        # the key goes to this browser's storage; the uploads were read into the job's files and deleted: the
        # file fields are emptied to say so
        return (started.key, status_markdown(started.status()), None, gr.Timer(active=True), gr.update(visible=False),
                None, None)

    def reattach(self, key):
        """On page load: the job this browser holds, found again (its poll resumes and shows the rest); a key
        this server does not know (a restart, an expired job, a forged value) is said once and forgotten."""
        p = self.p
        if not key:
            return {p.job: None}
        job = self.service.held(key)
        if job is None:
            return {p.job: None, p.status: ("⚠️ The job this browser remembered is no longer on this server (finished "
                                            "jobs are kept an hour, and none outlives a restart of the app); start a "
                                            "new one.")}
        return {p.job: key, p.status: status_markdown(job.status()), p.timer: gr.Timer(active=True)}

    def tick(self, key, request: gr.Request) -> dict:
        """The poll: status and curves while it waits or runs; when done, the student adopted for this page
        (unless its visitor switched back), zipped and shown beside its evidence."""
        p = self.p
        if not key:
            return {p.timer: gr.Timer(active=False)}
        try:
            current = self.service.runner.owned(key, "follow")
        except UserError as exc:
            return {p.status: f"⚠️ {md_escape(str(exc))}", p.timer: gr.Timer(active=False), p.job: None}
        info, history = current.status(), current.history()
        shown = {p.status: status_markdown(info), **({p.curves: training_curves(history)} if history else {})}
        if info["state"] in ("queued", "running"):
            return shown
        if info["state"] != "done":
            return {**shown, p.timer: gr.Timer(active=False)}
        try:
            note = (self.service.adopt(key, session_of(request)) if not current.released else
                    "Your task tab shows its configured student; the button below brings this job's student back.")
            zipped = self.service.archive(key)
        except UserError as exc:
            note, zipped = f"⚠️ {md_escape(str(exc))}", None
        recipe, chart, card = self.evidence(current)
        return {**shown, p.timer: gr.Timer(active=False), p.result: gr.update(visible=True), p.adopted: note,
                p.download: zipped, p.evidence: recipe, p.comparison: chart, p.card: card,
                self.page_timer: gr.Timer(active=True)}

    @staticmethod
    def evidence(job) -> tuple:
        """The finished run as the Distillation tab shows a configured one: recipe, recipes compared, card."""
        link = DistillationLink(output_dir=str(job.output))
        shown, why = load_evidence(link)
        if shown is None:
            return why, None, ""
        return shown.recipe_markdown(), recipe_comparison_chart(shown.figures), link.card_text() or ""

    def cancel(self, key):
        if not key:
            raise UserError("this browser has no distillation job to cancel.")
        return status_markdown(self.service.cancel(key)), gr.Timer(active=False)

    def restore(self, task_name, key, request: gr.Request):
        said = self.service.restore(task_name, session_of(request), key)
        return said, gr.Timer(active=True)

    def take(self, key, request: gr.Request):
        if not key:
            raise UserError("this browser has no finished job whose student it could take.")
        return self.service.adopt(key, session_of(request)), gr.Timer(active=True)

    def publish(self, key, repo_id, hub_token, is_dry_run, oauth_token: gr.OAuthToken | None = None,
                oauth_profile: gr.OAuthProfile | None = None):
        """On a Space with sign-in, the token is the visitor's sign-in's (gradio hands it to this call only) and
        the repo must be under their name; elsewhere the pasted one. Neither is logged, stored or shown."""
        if oauth_available():
            token = oauth_token.token if oauth_token is not None else None
            username = oauth_profile.username if oauth_profile is not None else None
            said = self.service.publish(key, repo_id, token, bool(is_dry_run), username=username, signed_in=True)
        else:
            said = self.service.publish(key, repo_id, hub_token, bool(is_dry_run))
        return f"```\n{said}\n```"


def reattach_outputs(p: TrainPanel) -> list:
    return [p.job, p.status, p.timer]


def wire(p: TrainPanel, h: TrainHandlers) -> None:
    planned = p.request_fields()
    for field in (p.task, p.rows, p.epochs, p.layers, p.baselines, p.augment, p.budget, p.upload):  # not transfer
        field.change(h.estimate, inputs=planned, outputs=[p.estimate, p.offer, p.offered], api_visibility="private",
                     show_progress="hidden")
    p.offer.click(h.take_offer, inputs=p.offered, outputs=p.budget, api_visibility="private")
    p.start.click(h.start, inputs={*planned, p.job}, api_visibility="private",
                  outputs=[p.job, p.status, p.curves, p.timer, p.result, p.upload, p.transfer])
    p.timer.tick(h.tick, inputs=p.job, outputs=[p.status, p.curves, p.timer, p.result, p.adopted, p.download,
                                                 p.evidence, p.comparison, p.card, h.page_timer, p.job],
                 api_visibility="private", show_progress="hidden")
    p.cancel.click(h.cancel, inputs=p.job, outputs=[p.status, p.timer], api_visibility="private")
    p.restore.click(h.restore, inputs=[p.task, p.job], outputs=[p.adopted, h.page_timer], api_visibility="private")
    p.take.click(h.take, inputs=p.job, outputs=[p.adopted, h.page_timer], api_visibility="private")
    p.publish.click(h.publish, inputs=[p.job, p.repo, p.token, p.dry_run], outputs=p.published,
                    api_visibility="private")
    # The API's own inputs: files without the page's widgets, numbers without the slider's bounds (the service
    # checks every bound and says it in a sentence, and deletes the upload on refusal too). The recipe box and
    # the budget come last with defaults, so a call with the first seven arguments keeps working.
    api_file, api_transfer, api_job = gr.File(visible=False), gr.File(visible=False), gr.Textbox(visible=False)
    api_layers, api_rows, api_epochs = (gr.Number(visible=False) for _ in range(3))
    api_augment = gr.Checkbox(True, visible=False, label="with_augment")
    api_budget = gr.Number(h.service.default_budget, visible=False, label="budget_minutes")
    wire_api(h.service, [p.task, api_file, api_transfer, api_layers, api_rows, api_epochs, p.baselines, api_augment,
                         api_budget], api_job)


def not_a_tool(fn: Callable) -> Callable:
    """Listed by view_api (so a script can discover it, and gradio_client fills its defaults) but never an
    MCP tool: gradio lists as tools only functions whose MCP type is "tool" (gradio/mcp.py, list_tools)."""
    fn._mcp_type = "api"
    return fn


def wire_api(service: TrainingService, inputs: list, api_job: gr.Textbox) -> None:
    """/distill_start, /distill_status, /distill_cancel, /distill_adopt for gradio_client, listed by view_api;
    not MCP tools (long CPU jobs). Every cap and check is the page's: the service applies them."""

    @not_a_tool
    @user_errors
    def distill_start(task_name, path, transfer_path, n_layers, n_rows, n_epochs, with_baselines, with_augment=True,
                      budget_minutes=None, request: gr.Request = None) -> str:
        """Start distilling a student of the task's teacher (a labelled file; a .txt file for fill-mask), fitted
        to budget_minutes (default 4.5, or the app's cap where lower); with_augment (default true): the teacher
        labels variants of the rows, as many as fit. When another job runs, this one waits in the queue. Returns
        the job's key (its id, a dot, its secret): pass it whole to /distill_status, /distill_cancel and
        /distill_adopt; keep it private."""
        asked = JobRequest(task=task_name, upload=path, transfer=transfer_path, layers=n_layers, rows=n_rows,
                           epochs=n_epochs, baselines=bool(with_baselines), augment=bool(with_augment),
                           budget_minutes=budget_minutes)
        return service.start(session_of(request), asked).key

    @not_a_tool
    @user_errors
    def distill_status(job_key: str) -> dict:
        """The job's state (queued, running, done, failed, cancelled) with position while queued, step,
        total_steps, elapsed_s, remaining_s, phase, stages (each with its seconds and steps), plan, adopted and,
        when done, the run's metrics.json as `metrics` (no server paths; its "path" keys named "file_path").
        Takes the key or the id alone."""
        return service.status(job_key)

    @not_a_tool
    @user_errors
    def distill_cancel(job_key: str) -> dict:
        """Stop a running job, or take a queued one out of the queue, and delete its files; needs the whole
        key. Returns its status."""
        return service.cancel(job_key)

    @not_a_tool
    @user_errors
    def distill_adopt(job_key: str, request: gr.Request) -> str:
        """Make a finished job's student answer this session's requests (the task endpoint, the page's tab)
        beside the teacher; needs the whole key. Returns what changed."""
        return service.adopt(job_key, session_of(request))

    trigger = gr.Button(visible=False)
    trigger.click(distill_start, inputs=inputs, outputs=api_job, api_name="distill_start")
    for endpoint in (distill_status, distill_cancel, distill_adopt):
        gr.api(endpoint, api_name=endpoint.__name__)
