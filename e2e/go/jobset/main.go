// Command jobset runs JobSet's controllers (the benchmark's JobSet peer) from the upstream packages, with every
// listener on loopback. Upstream's own main serves its admission webhooks (defaulting and validation) with
// certificates it rotates itself, on all interfaces; the benchmark installs no webhook configuration, so this
// entry point has no webhook server at all, the benchmark's JobSets spell out what the defaulting webhook would
// fill in, and metrics/probe addresses must name a loopback IP (or "0": off). Kubernetes' Job controller (in
// kube-controller-manager) makes the pods of the Jobs this controller creates.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	jobset "sigs.k8s.io/jobset/api/jobset/v1alpha2"
	"sigs.k8s.io/jobset/pkg/controllers"
	"sigs.k8s.io/jobset/pkg/metrics"
)

var setupLog = ctrl.Log.WithName("setup")

type options struct {
	metricsAddr string
	probeAddr   string
	threads     int
	qps         float64
	burst       int
}

func main() {
	var o options
	flag.StringVar(&o.metricsAddr, "metrics-bind-address", "0", `Metrics endpoint, a loopback "IP:port"; "0" disables it.`)
	flag.StringVar(&o.probeAddr, "health-probe-bind-address", "127.0.0.1:8081", `/healthz and /readyz, a loopback "IP:port"; "0" disables it.`)
	flag.IntVar(&o.threads, "controller-threads", 1, "Concurrent JobSet reconciles (controller-runtime's default: 1).")
	// Upstream's defaults (its configuration's clientConnection).
	flag.Float64Var(&o.qps, "kube-api-qps", 500, "Client QPS to the apiserver.")
	flag.IntVar(&o.burst, "kube-api-burst", 500, "Client burst to the apiserver.")
	// The same logger settings as upstream's main (development mode), so the peer does the same logging work.
	zapOpts := zap.Options{Development: true}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	if err := run(o); err != nil {
		setupLog.Error(err, "jobset failed")
		os.Exit(1)
	}
}

func run(o options) error {
	for name, addr := range map[string]string{
		"--metrics-bind-address": o.metricsAddr, "--health-probe-bind-address": o.probeAddr,
	} {
		if err := checkLoopback(name, addr); err != nil {
			return err
		}
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(jobset.AddToScheme(scheme))
	metrics.Register()

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = float32(o.qps), o.burst
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress: o.probeAddr,
		Controller: config.Controller{GroupKindConcurrency: map[string]int{
			jobset.GroupVersion.WithKind("JobSet").GroupKind().String(): o.threads,
		}},
	})
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	ctx := ctrl.SetupSignalHandler()
	if err := controllers.SetupJobSetIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		return fmt.Errorf("JobSet indexes: %w", err)
	}
	if err := controllers.SetupPodIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		return fmt.Errorf("pod indexes: %w", err)
	}
	js := controllers.NewJobSetReconciler(mgr.GetClient(), mgr.GetScheme(), mgr.GetEventRecorder("jobset"))
	if err := js.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("JobSet controller: %w", err)
	}
	pods := controllers.NewPodReconciler(mgr.GetClient(), mgr.GetScheme(), mgr.GetEventRecorder("pod"))
	if err := pods.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("pod controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	setupLog.Info("starting manager", "metrics", o.metricsAddr, "probes", o.probeAddr,
		"threads", o.threads, "qps", o.qps, "burst", o.burst)
	return mgr.Start(ctx)
}

// checkLoopback accepts "0" (listener off) or "IP:port" with a loopback IP; anything else would bind further.
func checkLoopback(flagName, addr string) error {
	if addr == "0" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf(`%s=%q: must be a loopback "IP:port" such as 127.0.0.1:8081, or "0" to disable`, flagName, addr)
	}
	return nil
}
