// Command training-operator runs Kubeflow training-operator v1's PyTorchJob controller (the benchmark's reference
// operator) from the upstream packages, with every listener on loopback. Upstream's own main always serves
// validation webhooks on ":<port>" with no host flag; the benchmark installs no webhook configuration, so this
// entry point has no webhook server at all, and metrics/probe addresses must name a loopback IP (or "0": off).
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"strings"

	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/util/flowcontrol"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	schedulerpluginsv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	volcanov1beta1 "volcano.sh/apis/pkg/apis/scheduling/v1beta1"
	volcanoclient "volcano.sh/apis/pkg/client/clientset/versioned"

	kubeflowv1 "github.com/kubeflow/training-operator/pkg/apis/kubeflow.org/v1"
	"github.com/kubeflow/training-operator/pkg/config"
	"github.com/kubeflow/training-operator/pkg/controller.v1/common"
	pytorchcontroller "github.com/kubeflow/training-operator/pkg/controller.v1/pytorch"
)

var setupLog = ctrl.Log.WithName("setup")

type options struct {
	metricsAddr   string
	probeAddr     string
	gangScheduler string
	threads       int
	qps           int
	burst         int
}

func main() {
	var o options
	flag.StringVar(&o.metricsAddr, "metrics-bind-address", "0", `Metrics endpoint, a loopback "IP:port"; "0" disables it.`)
	flag.StringVar(&o.probeAddr, "health-probe-bind-address", "127.0.0.1:8081", `/healthz and /readyz, a loopback "IP:port"; "0" disables it.`)
	flag.StringVar(&o.gangScheduler, "gang-scheduler-name", "", `"volcano", or empty for no gang scheduling.`)
	flag.IntVar(&o.threads, "controller-threads", 1, "Concurrent PyTorchJob reconciles.")
	flag.IntVar(&o.qps, "kube-api-qps", 20, "Client QPS to the apiserver.")
	flag.IntVar(&o.burst, "kube-api-burst", 30, "Client burst to the apiserver.")
	// Upstream's defaults, as its main sets them through flags; used for PyTorchJobs with a Master replica.
	config.Config.PyTorchInitContainerImage = config.PyTorchInitContainerImageDefault
	config.Config.PyTorchInitContainerTemplateFile = config.PyTorchInitContainerTemplateFileDefault
	config.Config.PyTorchInitContainerMaxTries = config.PyTorchInitContainerMaxTriesDefault
	// The same logger settings as upstream's main (development mode), so the reference does the same logging work.
	zapOpts := zap.Options{Development: true, StacktraceLevel: zapcore.DPanicLevel}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	if err := run(o); err != nil {
		setupLog.Error(err, "training-operator failed")
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
	volcano := strings.EqualFold(o.gangScheduler, string(common.GangSchedulerVolcano))
	if !volcano && o.gangScheduler != "" {
		return fmt.Errorf(`--gang-scheduler-name=%q: only "volcano" or "" is supported`, o.gangScheduler)
	}

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(kubeflowv1.AddToScheme(scheme))
	utilruntime.Must(volcanov1beta1.AddToScheme(scheme))
	utilruntime.Must(schedulerpluginsv1alpha1.AddToScheme(scheme)) // watched by the reconciler when its CRD exists

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	cfg.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(float32(o.qps), o.burst)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress: o.probeAddr,
	})
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	gang := common.GenNonGangSchedulerSetupFunc()
	if volcano {
		gvk := volcanov1beta1.SchemeGroupVersion.WithKind("PodGroup")
		if _, err := mgr.GetRESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			return fmt.Errorf("--gang-scheduler-name=volcano needs the %s CRD installed: %w", gvk, err)
		}
		client, err := volcanoclient.NewForConfig(mgr.GetConfig())
		if err != nil {
			return fmt.Errorf("volcano client: %w", err)
		}
		gang = common.GenVolcanoSetupFunc(client)
	}
	if err := pytorchcontroller.NewReconciler(mgr, gang).SetupWithManager(mgr, o.threads); err != nil {
		return fmt.Errorf("PyTorchJob controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	setupLog.Info("starting manager", "metrics", o.metricsAddr, "probes", o.probeAddr,
		"gangScheduler", o.gangScheduler, "threads", o.threads, "qps", o.qps, "burst", o.burst)
	return mgr.Start(ctrl.SetupSignalHandler())
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
