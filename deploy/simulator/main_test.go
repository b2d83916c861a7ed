package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
)

func TestParseFlags(t *testing.T) {
	t.Run("the defaults serve 3000 jobs of 12 workflows on 127.0.0.1:7002", func(t *testing.T) {
		c, err := parseFlags(nil, io.Discard)
		want := config{listenAddress: "127.0.0.1:7002", jobs: 3000, workflows: 12, seed: 1, tick: 2 * time.Second, username: "root", password: "nebula", listingTasks: "some"}
		if err != nil || c != want {
			t.Errorf("got %+v, %v; want %+v", c, err, want)
		}
	})
	for _, tt := range []struct {
		name string
		args []string
		ok   bool
	}{
		{"every flag can be set", []string{"--web.listen-address=:1", "--jobs=5", "--workflows=2", "--seed=7", "--tick=1s",
			"--username=u", "--password=p", "--max-page-size=100", "--fail-workflow=bfs_social", "--tasks-in-listing=all"}, true},
		{"an unknown tasks-in-listing is refused", []string{"--tasks-in-listing=half"}, false},
		{"an unknown fail workflow is refused", []string{"--fail-workflow=nope"}, false},
		{"zero workflows are refused", []string{"--workflows=0"}, false},
		{"a zero tick is refused", []string{"--tick=0s"}, false},
		{"an unknown flag is refused", []string{"--nope"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseFlags(tt.args, io.Discard); (err == nil) != tt.ok {
				t.Errorf("err %v", err)
			}
		})
	}
}

func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := parseFlags([]string{"--jobs=50", "--workflows=3", "--tick=10ms", "--max-page-size=20", "--password=pw"}, io.Discard)
	var logs bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, c, ln, slog.New(slog.NewTextHandler(&logs, nil))) }()
	base := "http://" + ln.Addr().String()

	req, _ := http.NewRequest("POST", base+explorer.ConnectPath, strings.NewReader(`{"address":"127.0.0.1","port":9669}`))
	req.Header.Set("Authorization", "Bearer "+base64.StdEncoding.EncodeToString([]byte("root:pw")))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || len(resp.Cookies()) != 1 {
		t.Fatalf("login: HTTP %d", resp.StatusCode)
	}
	list := func() explorer.JobPage {
		t.Helper()
		req, _ := http.NewRequest("GET", base+explorer.JobsPath+"?"+explorer.Filter{}.Query(1, 1000).Encode(), nil)
		req.AddCookie(resp.Cookies()[0])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var env struct{ Data explorer.JobPage }
		if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
			t.Fatal(err)
		}
		return env.Data
	}
	p := list()
	if p.Total < 50 || p.PageSize != 20 || len(p.Items) != 20 {
		t.Errorf("listing: total %d, PageSize %d, %d items", p.Total, p.PageSize, len(p.Items))
	}
	withTasks := map[string]bool{}
	for _, j := range p.Items {
		withTasks[j.WorkflowID] = j.Tasks != nil
	}
	if len(withTasks) < 2 || !slices.Contains(slices.Collect(maps.Values(withTasks)), true) || !slices.Contains(slices.Collect(maps.Values(withTasks)), false) {
		t.Errorf("tasks in the listing by workflow: %v; want some with, some without", withTasks)
	}
	// The simulator ticks: new jobs appear (0.3 a tick on average).
	for deadline := time.Now().Add(10 * time.Second); p.Total == 50; p = list() {
		if time.Now().After(deadline) {
			t.Fatal("no new job after 10 s of 10 ms ticks")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// A connection the client dialed but never sent a request on holds
	// Shutdown for 5 s (net/http treats it as active that long).
	http.DefaultClient.CloseIdleConnections()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not stop")
	}
	if !strings.Contains(logs.String(), "address="+ln.Addr().String()) || !strings.Contains(logs.String(), "jobs=50") {
		t.Errorf("logs: %s", logs.String())
	}
}
