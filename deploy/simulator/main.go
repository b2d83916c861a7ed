// Command simulator serves a fake NebulaGraph Explorer open API with a live,
// changing job history, for the demo and end-to-end tests: it loads a
// generated history into explorertest.Explorer and advances it every tick.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer/explorertest"
)

// config is the command line.
type config struct {
	listenAddress string
	jobs          int
	workflows     int
	seed          int64
	tick          time.Duration
	username      string
	password      string
	maxPageSize   int
	failWorkflow  string
	listingTasks  string
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	app := kingpin.New("simulator", "Serves a fake NebulaGraph Explorer open API with a live job history.")
	app.HelpFlag.Short('h')
	app.UsageWriter(stderr)
	app.ErrorWriter(stderr)
	app.Flag("web.listen-address", "Address to listen on.").Default("127.0.0.1:7002").StringVar(&c.listenAddress)
	app.Flag("jobs", "Jobs in the generated history.").Default("3000").IntVar(&c.jobs)
	app.Flag("workflows", "Workflows the jobs belong to.").Default("12").IntVar(&c.workflows)
	app.Flag("seed", "Seed of the generated history and its changes.").Default("1").Int64Var(&c.seed)
	app.Flag("tick", "Time between two steps of live change.").Default("2s").DurationVar(&c.tick)
	app.Flag("username", "NebulaGraph user that /connect accepts.").Default("root").StringVar(&c.username)
	app.Flag("password", "Password that /connect accepts.").Default("nebula").StringVar(&c.password)
	app.Flag("max-page-size", "Cap on the page size of listings (0 = none).").Default("0").IntVar(&c.maxPageSize)
	app.Flag("fail-workflow", "Name of a workflow whose jobs always fail.").Default("").StringVar(&c.failWorkflow)
	app.Flag("tasks-in-listing", "Which listing items carry their tasks (the others say \"tasks\": null, "+
		"and only a job's detail has them): all, none, or some (every second workflow).").
		Default("some").EnumVar(&c.listingTasks, "all", "some", "none")
	if _, err := app.Parse(args); err != nil {
		return c, err
	}
	switch {
	case c.jobs < 0:
		return c, fmt.Errorf("--jobs must not be negative, got %d", c.jobs)
	case c.workflows < 1:
		return c, fmt.Errorf("--workflows must be at least 1, got %d", c.workflows)
	case c.tick <= 0:
		return c, fmt.Errorf("--tick must be positive, got %v", c.tick)
	case c.maxPageSize < 0:
		return c, fmt.Errorf("--max-page-size must not be negative, got %d", c.maxPageSize)
	case c.failWorkflow != "" && !slices.ContainsFunc(c.workload().WorkflowList(),
		func(wf explorertest.Workflow) bool { return wf.Name == c.failWorkflow }):
		return c, fmt.Errorf("--fail-workflow %q is none of the %d workflows", c.failWorkflow, c.workflows)
	}
	return c, nil
}

// workload is the generator the flags describe, with its history ending now.
func (c config) workload() *explorertest.Workload {
	return &explorertest.Workload{Workflows: c.workflows, Seed: c.seed, Now: time.Now(), FailWorkflow: c.failWorkflow}
}

// quirks are the fake's switches the flags ask for.
func (c config) quirks() explorertest.Quirks {
	q := explorertest.Quirks{MaxPageSize: c.maxPageSize, TasksNull: true, TasksInListing: c.listingTasks == "all"}
	if c.listingTasks == "some" {
		q.TasksInListingOf = map[string]bool{}
		for i, wf := range c.workload().WorkflowList() {
			if i%2 == 0 {
				q.TasksInListingOf[wf.ID] = true
			}
		}
	}
	return q
}

// serve loads the history and serves it on ln until ctx ends.
func serve(ctx context.Context, c config, ln net.Listener, logger *slog.Logger) error {
	w := c.workload()
	e := explorertest.New()
	e.SetCredentials(c.username, c.password)
	e.SetQuirks(c.quirks())
	e.AddJobs(w.History(c.jobs))

	server := &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- server.Serve(ln) }()
	logger.Info("serving a fake NebulaGraph Explorer", "address", ln.Addr().String(),
		"jobs", c.jobs, "workflows", c.workflows, "seed", c.seed, "tick", c.tick, "tasks_in_listing", c.listingTasks)

	ticker := time.NewTicker(c.tick)
	defer ticker.Stop()
	for {
		select {
		case now := <-ticker.C:
			w.Step(e, now)
		case err := <-done:
			return err
		case <-ctx.Done():
			shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := server.Shutdown(shutdownCtx)
			if serr := <-done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
				err = serr
			}
			logger.Info("stopped")
			return err
		}
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	c, err := parseFlags(args, stderr)
	if err != nil {
		logger.Error("bad command line", "err", err)
		return 2
	}
	ln, err := net.Listen("tcp", c.listenAddress)
	if err != nil {
		logger.Error("cannot listen", "err", err)
		return 1
	}
	if err := serve(ctx, c, ln, logger); err != nil {
		logger.Error("serving failed", "err", err)
		return 1
	}
	return 0
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}
