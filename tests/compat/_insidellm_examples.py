"""The analytics SDK's documented usage, as its README, DOCUMENTATION.md and ``examples/``
folder (github.com/ashishinsidellm/insidellm) show it, with only the import lines changed
(``import insidellm`` → ``import limelight.compat.insidellm as insidellm``, ``from insidellm...
import X`` → ``from limelight.compat.insidellm import X``).

Other changes, each for a reason given where it is made: a module-level example is wrapped in
a function; the README's undefined helpers (``call_llm``, ``calculator``,
``process_user_request``) are defined; ``print`` of a rich table is left out; examples that
need CrewAI (not installed) keep only their handler calls.
"""

# ruff: noqa: E501, TRY301, B904, RUF013
# mypy: ignore-errors

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import limelight.compat.insidellm as insidellm
from limelight.compat.insidellm import (
    AgentPlanningPayload,
    AgentReasoningPayload,
    AgentResponsePayload,
    APIRequestPayload,
    APIResponsePayload,
    ChainEndPayload,
    ChainStartPayload,
    Event,
    EventType,
    FunctionExecutionPayload,
    InsideLLMClient,
    LLMRequestPayload,
    LLMResponsePayload,
    LLMStreamingChunkPayload,
    PerformanceMetricPayload,
    SessionEndPayload,
    SessionStartPayload,
    TimeoutErrorPayload,
    ToolCallPayload,
    ToolResponsePayload,
    UserFeedbackPayload,
    UserInputPayload,
    ValidationErrorPayload,
    generate_uuid,
    track_function_execution,
    track_llm_call,
)

# -- README: Quick Start, Basic Usage ----------------------------------------------------


def readme_quick_start() -> str:
    # Initialize the SDK
    insidellm.initialize(api_key="your-api-key")

    # Start a session
    client = insidellm.get_client()
    run_id = client.start_run(user_id="user-123")

    # Log events
    user_event = insidellm.Event.create_user_input(
        run_id=run_id, user_id="user-123", input_text="Hello, AI assistant!"
    )
    client.log_event(user_event)

    # Events are automatically batched and sent asynchronously
    # End the session
    client.end_run(run_id)
    insidellm.shutdown()
    return run_id


# -- README: Custom Agent Integration (decorators, context managers) ---------------------


def call_llm(prompt: str) -> str:  # the README's stand-in for a model call
    return f"Hello! ({prompt})"


def calculator(expression: str) -> int:  # the README's stand-in for a tool
    return eval(expression)


def readme_custom_agent() -> list[Any]:
    results = []

    @insidellm.track_llm_call("gpt-4", "openai")
    def call_llm_tracked(prompt):
        # Your LLM call logic
        return call_llm(prompt)

    @insidellm.track_tool_use("web_search", "api")
    def search_web(query):
        # Your tool logic
        return [f"result for {query}"]

    @insidellm.track_agent_step("planning")
    def plan_task(task):
        # Your planning logic
        return ["search", "answer"]

    with insidellm.InsideLLMTracker(user_id="user-123") as tracker:
        # Log user input
        input_id = tracker.log_user_input("Hello, how can you help?")

        # Track LLM calls
        with tracker.track_llm_call("gpt-4", "openai", "User greeting") as log_response:
            response = call_llm("User greeting")
            log_response(response)

        # Track tool usage
        with tracker.track_tool_call("calculator", {"expression": "2+2"}) as log_response:
            result = calculator("2+2")
            log_response(result)

        # The decorated functions, inside the tracker's run
        results.append(plan_task("greet"))
        results.append(search_web("greetings"))
        results.append(call_llm_tracked("Say hello"))

        # Log agent response
        tracker.log_agent_response("Hello! I can help with many tasks.", parent_event_id=input_id)
    return results


# -- README: Advanced Usage --------------------------------------------------------------


def readme_manual_event() -> Event:
    # Create custom events
    event = Event(
        run_id="your-run-id",
        user_id="user-123",
        event_type=EventType.PERFORMANCE_METRIC,
        payload={"metric_name": "response_time", "metric_value": 250, "metric_unit": "ms"},
    )

    client = insidellm.get_client()
    client.log_event(event)
    return event


def process_user_request() -> None:  # the README's stand-in for agent logic that fails
    raise ValueError("could not parse the request")


def readme_error_handling(current_run_id: str, current_user_id: str) -> Event:
    client = insidellm.get_client()
    try:
        # Your agent logic
        process_user_request()
    except Exception as e:
        # Log errors automatically
        error_event = insidellm.Event.create_error(
            run_id=current_run_id,
            user_id=current_user_id,
            error_type="processing_error",
            error_message=str(e),
            error_code=type(e).__name__,
        )
        client.log_event(error_event)
    return error_event


def readme_performance_monitoring() -> dict[str, Any]:
    client = insidellm.get_client()

    # Get queue statistics
    stats = client.queue_manager.get_statistics()
    print(f"Events queued: {stats['events_queued']}")
    print(f"Success rate: {stats['success_rate']:.1f}%")

    # Check client health
    if client.is_healthy():
        print("Client is healthy")
    return stats


# -- examples/basic_usage.py -------------------------------------------------------------


def basic_event_logging():
    """Demonstrate basic event logging functionality."""
    client = insidellm.get_client()
    run_id = client.start_run(
        user_id="basic-demo-user", metadata={"session_type": "demo", "environment": "development"}
    )
    user_input_event = Event.create_user_input(
        run_id=run_id,
        user_id="basic-demo-user",
        input_text="Hello, how can you help me today?",
        input_type="text",
        metadata={"channel": "web"},
    )
    client.log_event(user_input_event)
    llm_request_event = Event.create_llm_request(
        run_id=run_id,
        user_id="basic-demo-user",
        model_name="gpt-4",
        provider="openai",
        prompt="User asks: Hello, how can you help me today?",
        parent_event_id=user_input_event.event_id,
        parameters={"temperature": 0.7, "max_tokens": 150},
    )
    client.log_event(llm_request_event)
    time.sleep(0.5)
    llm_response_event = Event.create_llm_response(
        run_id=run_id,
        user_id="basic-demo-user",
        model_name="gpt-4",
        provider="openai",
        response_text="Hello! I'm an AI assistant. I can help you with various tasks like answering questions, writing, analysis, and more.",
        parent_event_id=llm_request_event.event_id,
        response_time_ms=500,
        usage={"prompt_tokens": 15, "completion_tokens": 32, "total_tokens": 47},
    )
    client.log_event(llm_response_event)
    client.end_run(run_id)
    return run_id


def tool_usage_example():
    """Demonstrate tool usage tracking."""
    client = insidellm.get_client()
    run_id = client.start_run(user_id="tool-demo-user")
    tool_call_event = Event(
        run_id=run_id,
        user_id="tool-demo-user",
        event_type=EventType.TOOL_CALL,
        payload={
            "tool_name": "calculator",
            "tool_type": "function",
            "parameters": {"expression": "15 * 24"},
            "call_id": "calc-001",
        },
    )
    client.log_event(tool_call_event)
    time.sleep(0.2)
    tool_response_event = Event(
        run_id=run_id,
        user_id="tool-demo-user",
        event_type=EventType.TOOL_RESPONSE,
        parent_event_id=tool_call_event.event_id,
        payload={
            "tool_name": "calculator",
            "tool_type": "function",
            "call_id": "calc-001",
            "response_data": 360,
            "execution_time_ms": 200,
            "success": True,
        },
    )
    client.log_event(tool_response_event)
    client.end_run(run_id)
    return run_id


def error_handling_example():
    """Demonstrate error event logging."""
    client = insidellm.get_client()
    run_id = client.start_run(user_id="error-demo-user")
    try:
        raise ValueError("Invalid input parameter")
    except Exception as e:
        error_event = Event.create_error(
            run_id=run_id,
            user_id="error-demo-user",
            error_type="validation_error",
            error_message=str(e),
            error_code="INVALID_INPUT",
            context={"operation": "data_validation", "input": "invalid_value"},
        )
        client.log_event(error_event)
    client.end_run(run_id)
    return run_id


def performance_metrics_example():
    """Demonstrate performance metrics logging."""
    client = insidellm.get_client()
    run_id = client.start_run(user_id="metrics-demo-user")
    metrics = [
        ("response_time", 250, "ms"),
        ("memory_usage", 128, "MB"),
        ("token_count", 150, "tokens"),
        ("accuracy_score", 0.95, "percentage"),
    ]
    for metric_name, value, unit in metrics:
        metric_event = Event(
            run_id=run_id,
            user_id="metrics-demo-user",
            event_type=EventType.PERFORMANCE_METRIC,
            payload={
                "metric_name": metric_name,
                "metric_value": value,
                "metric_unit": unit,
                "metric_type": "gauge",
            },
        )
        client.log_event(metric_event)
    client.end_run(run_id)
    return run_id


def context_manager_example():
    """Demonstrate context manager usage."""
    with insidellm.InsideLLMTracker(
        user_id="context-demo-user", metadata={"demo_type": "context_manager"}
    ) as tracker:
        input_id = tracker.log_user_input(
            input_text="What's the weather like today?", input_type="text"
        )
        with tracker.track_llm_call(
            "gpt-3.5-turbo", "openai", "Get weather information"
        ) as log_response:
            time.sleep(0.3)
            response_text = (
                "I'd be happy to help with weather information, but I need your location first."
            )
            log_response(response_text)
        with tracker.track_tool_call("weather_api", {"location": "New York"}) as log_response:
            time.sleep(0.4)
            weather_data = {"temperature": 72, "condition": "sunny", "humidity": 45}
            log_response(weather_data)
        tracker.log_agent_response(
            response_text="The weather in New York is currently 72°F and sunny with 45% humidity.",
            response_type="weather_info",
            parent_event_id=input_id,
        )
    return tracker.run_id


def decorator_example():
    """Demonstrate decorator usage."""

    @insidellm.track_llm_call("custom-model", "custom-provider")
    def call_custom_llm(prompt, temperature=0.7):
        time.sleep(0.2)
        return f"Response to: {prompt[:30]}..."

    @insidellm.track_tool_use("text_analyzer", "nlp")
    def analyze_text(text):
        time.sleep(0.1)
        return {"sentiment": "positive", "confidence": 0.85, "word_count": len(text.split())}

    @insidellm.track_agent_step("text_processing")
    def process_text(text):
        return text.upper()

    client = insidellm.get_client()
    run_id = client.start_run(user_id="decorator-demo-user")
    try:
        call_custom_llm("Analyze this text for sentiment")
        analyze_text("This is a great example of SDK usage!")
        process_text("hello world")
    except Exception as e:
        print(f"Error in decorator example: {e}")
    finally:
        client.end_run(run_id)
    return run_id


def statistics_and_monitoring():
    """Show statistics and monitoring capabilities."""
    client = insidellm.get_client()
    stats = client.queue_manager.get_statistics()
    print("Queue Statistics:")
    print(f"  Events Queued: {stats['events_queued']}")
    print(f"  Events Sent: {stats['events_sent']}")
    print(f"  Events Failed: {stats['events_failed']}")
    print(f"  Success Rate: {stats['success_rate']:.1f}%")
    print(f"  Current Queue Size: {stats['queue_size']}")
    health_status = client.is_healthy()
    print(f"\nClient Health: {'Healthy' if health_status else 'Unhealthy'}")
    current_run = client.get_current_run_id()
    current_user = client.get_current_user_id()
    print(f"Current Run ID: {current_run or 'None'}")
    print(f"Current User ID: {current_user or 'None'}")
    return stats


def basic_usage_main(api_key: str) -> dict[str, Any]:
    """examples/basic_usage.py's main(), returning the run ids (and the statistics it
    printed) instead of only printing them."""
    insidellm.initialize(
        api_key=api_key,
        local_testing=True,
        auto_flush_interval=10.0,
        batch_size=20,
        max_retries=2,
        raise_on_error=False,
    )
    out: dict[str, Any] = {}
    try:
        out["basic"] = basic_event_logging()
        out["tool"] = tool_usage_example()
        out["error"] = error_handling_example()
        out["metrics"] = performance_metrics_example()
        out["context"] = context_manager_example()
        out["decorator"] = decorator_example()
        out["stats"] = statistics_and_monitoring()
        out["flushed"] = insidellm.flush()
    finally:
        insidellm.shutdown()
    return out


# -- examples/custom_agent_example.py ----------------------------------------------------


class CustomAgent:
    """Example custom agent that uses InsideLLM for tracking."""

    def __init__(self, name: str, model: str = "custom-llm-v1"):
        self.name = name
        self.model = model
        self.memory = {}

    @insidellm.track_llm_call(
        model_name="custom-llm-v1",
        provider="custom",
        extract_prompt=lambda self, prompt, **kwargs: prompt,
        extract_response=lambda response: response.get("text", ""),
    )
    def _call_llm(self, prompt: str, **kwargs) -> dict[str, Any]:
        time.sleep(random.uniform(0.1, 0.3))
        return {
            "text": f"Mock response to: {prompt[:50]}...",
            "confidence": random.uniform(0.8, 1.0),
            "tokens_used": random.randint(50, 200),
        }

    @insidellm.track_tool_use(
        tool_name="calculator",
        tool_type="function",
        extract_parameters=lambda self, expression: {"expression": expression},
        extract_response=lambda result: result,
    )
    def _calculator_tool(self, expression: str) -> float:
        try:
            allowed_chars = set("0123456789+-*/.() ")
            if all(c in allowed_chars for c in expression):
                return eval(expression)
            else:
                raise ValueError("Invalid expression")
        except Exception as e:
            raise ValueError(f"Calculation error: {e}")

    @insidellm.track_tool_use(
        tool_name="weather",
        tool_type="api",
        extract_parameters=lambda self, location: {"location": location},
    )
    def _weather_tool(self, location: str) -> dict[str, Any]:
        time.sleep(random.uniform(0.2, 0.5))
        return {
            "location": location,
            "temperature": random.randint(15, 30),
            "condition": random.choice(["sunny", "cloudy", "rainy"]),
            "humidity": random.randint(30, 80),
        }

    @insidellm.track_tool_use(tool_name="memory", tool_type="storage")
    def _memory_tool(self, action: str, key: str = None, value: str = None) -> Any:
        if action == "store" and key and value:
            self.memory[key] = value
            return f"Stored {key}: {value}"
        elif action == "retrieve" and key:
            return self.memory.get(key, "Not found")
        elif action == "list":
            return list(self.memory.keys())
        else:
            raise ValueError("Invalid memory operation")

    @insidellm.track_agent_step("planning")
    def _plan_task(self, task: str) -> list[str]:
        time.sleep(0.1)
        if "calculate" in task.lower() or any(op in task for op in ["+", "-", "*", "/"]):
            return ["use_calculator", "format_response"]
        elif "weather" in task.lower():
            return ["get_weather", "format_response"]
        elif "remember" in task.lower() or "store" in task.lower():
            return ["use_memory", "confirm_storage"]
        else:
            return ["call_llm", "format_response"]

    @insidellm.track_agent_step("execution")
    def _execute_step(self, step: str, context: dict[str, Any]) -> Any:
        if step == "use_calculator":
            expression = context.get("expression", "1+1")
            return self._calculator_tool(expression)
        elif step == "get_weather":
            location = context.get("location", "New York")
            return self._weather_tool(location)
        elif step == "use_memory":
            return self._memory_tool(
                context.get("action", "list"), context.get("key"), context.get("value")
            )
        elif step == "call_llm":
            prompt = context.get("prompt", "Hello")
            return self._call_llm(prompt)
        elif step == "format_response":
            return f"Formatted: {context.get('data', 'No data')}"
        else:
            return f"Unknown step: {step}"

    def process_task(self, task: str, user_id: str) -> str:
        with insidellm.InsideLLMTracker(
            user_id=user_id,
            metadata={"agent_name": self.name, "agent_model": self.model, "task_type": "general"},
        ) as tracker:
            try:
                input_event_id = tracker.log_user_input(
                    input_text=task, input_type="text", channel="custom_agent"
                )
                plan = self._plan_task(task)
                planning_event = insidellm.Event(
                    run_id=tracker.run_id,
                    user_id=user_id,
                    event_type=insidellm.EventType.AGENT_PLANNING,
                    parent_event_id=input_event_id,
                    payload={
                        "plan_type": "sequential",
                        "planned_actions": [
                            {"step": step, "order": i} for i, step in enumerate(plan)
                        ],
                        "planning_time_ms": 100,
                    },
                )
                tracker.client.log_event(planning_event)
                results = []
                context = {"task": task}
                for step in plan:
                    try:
                        result = self._execute_step(step, context)
                        results.append(result)
                        context["data"] = result
                    except Exception as e:
                        tracker.log_error(
                            error_type="step_execution_error",
                            error_message=str(e),
                            error_code=type(e).__name__,
                        )
                        results.append(f"Error in {step}: {e}")
                final_response = (
                    f"Task completed. Results: {results[-1] if results else 'No results'}"
                )
                tracker.log_agent_response(
                    response_text=final_response,
                    response_type="task_completion",
                    parent_event_id=planning_event.event_id,
                    response_confidence=0.9,
                )
                return final_response
            except Exception as e:
                tracker.log_error(
                    error_type="task_processing_error",
                    error_message=str(e),
                    error_code=type(e).__name__,
                )
                return f"Task failed: {e}"


def demonstrate_context_managers():
    with insidellm.InsideLLMTracker(
        user_id="context-demo-user", metadata={"demo": "context_managers"}
    ) as tracker:
        with tracker.track_llm_call("gpt-4", "openai", "What is AI?") as log_response:
            time.sleep(0.1)
            response = "AI is artificial intelligence..."
            log_response(response)
        with tracker.track_tool_call("web_search", {"query": "AI news"}) as log_response:
            time.sleep(0.2)
            results = ["Article 1", "Article 2", "Article 3"]
            log_response(results)
        tracker.log_performance_metric(
            metric_name="processing_time", metric_value=300, metric_unit="ms"
        )


def custom_agent_main(api_key: str) -> dict[str, Any]:
    insidellm.initialize(api_key=api_key, auto_flush_interval=3.0, batch_size=5)
    agent = CustomAgent("MyCustomAgent")
    tasks = [
        "Calculate 15 * 24",
        "What's the weather in San Francisco?",
        "Remember that my favorite color is blue",
        "What did I tell you about my favorite color?",
        "Tell me a joke about programming",
    ]
    answers = [agent.process_task(task, f"user-{i}") for i, task in enumerate(tasks, 1)]
    demonstrate_context_managers()
    client = insidellm.get_client()
    stats = client.queue_manager.get_statistics()
    insidellm.flush()
    insidellm.shutdown()
    return {"answers": answers, "stats": stats}


# -- examples/decorator_example.py (module-level code, in a function) --------------------


def decorator_module_example() -> tuple[InsideLLMClient, str, list[str]]:
    client = InsideLLMClient()
    run_id = str(uuid.uuid4())
    client.start_run(run_id=run_id)

    @track_function_execution(client, function_name="my_custom_string_concatenator")
    def example_tracked_function(a: str, b: str) -> str:
        return a + " " + b

    @track_llm_call(client, model_name="mock-llm", provider="mock_provider")
    def example_llm_call_function(prompt: str, temperature: float = 0.7):
        return f"This is a mock LLM response to your prompt: '{prompt}' (temp: {temperature})"

    outputs = [
        example_tracked_function("Hello", "Decorator"),
        example_llm_call_function(
            "Explain the theory of relativity in simple terms.", temperature=0.5
        ),
    ]
    client.end_run()
    return client, run_id, outputs


# -- examples/ecommerce_example.py (without its rich printing) ----------------------------


def create_ecommerce_session(client) -> dict[str, Event]:
    """Every event type through a shopping session."""
    run_id = generate_uuid()
    user_id = generate_uuid()
    session_id = generate_uuid()
    client.start_run(run_id=run_id, user_id=user_id)
    e: dict[str, Event] = {}
    e["session_start"] = Event(
        run_id=run_id,
        user_id=user_id,
        event_type=EventType.SESSION_START,
        payload=SessionStartPayload(
            session_id=session_id,
            session_type="shopping",
            initial_context={"platform": "web", "device": "desktop"},
        ).dict(),
    )
    e["user_search"] = Event(
        run_id=run_id,
        user_id=user_id,
        event_type=EventType.USER_INPUT,
        parent_event_id=e["session_start"].event_id,
        payload=UserInputPayload(
            input_text="I'm looking for a wireless gaming mouse under $50",
            input_type="text",
            channel="web",
            session_context={"cart_items": 0},
        ).dict(),
    )
    e["agent_plan"] = Event(
        run_id=run_id,
        user_id=user_id,
        event_type=EventType.AGENT_PLANNING,
        parent_event_id=e["user_search"].event_id,
        payload=AgentPlanningPayload(
            plan_type="sequential",
            planned_actions=[
                {
                    "action": "search_products",
                    "parameters": {"category": "gaming_mice", "max_price": 50},
                },
                {"action": "filter_results", "parameters": {"wireless": True}},
            ],
            planning_time_ms=150,
            plan_confidence=0.95,
        ).dict(),
    )
    e["agent_reasoning"] = Event(
        run_id=run_id,
        user_id=user_id,
        event_type=EventType.AGENT_REASONING,
        parent_event_id=e["agent_plan"].event_id,
        payload=AgentReasoningPayload(
            reasoning_type="chain_of_thought",
            reasoning_steps=[
                "User wants a wireless gaming mouse under $50",
                "Need to search gaming mice category",
            ],
            confidence_score=0.9,
            reasoning_time_ms=200,
        ).dict(),
    )
    e["search_tool"] = Event(
        run_id=run_id,
        user_id=user_id,
        event_type=EventType.TOOL_CALL,
        parent_event_id=e["agent_reasoning"].event_id,
        payload=ToolCallPayload(
            tool_name="product_search",
            tool_type="api",
            parameters={"category": "gaming_mice", "max_price": 50, "wireless": True},
            call_id=generate_uuid(),
        ).dict(),
    )
    e["api_request"] = Event(
        run_id=run_id,
        user_id=user_id,
        event_type=EventType.API_REQUEST,
        parent_event_id=e["search_tool"].event_id,
        payload=APIRequestPayload(
            api_name="product_catalog",
            endpoint="/api/v1/products/search",
            method="GET",
            parameters={"category": "gaming_mice", "max_price": 50, "wireless": True},
        ).dict(),
    )
    e["api_response"] = Event(
        run_id=run_id,
        user_id=user_id,
        event_type=EventType.API_RESPONSE,
        parent_event_id=e["api_request"].event_id,
        payload=APIResponsePayload(
            api_name="product_catalog",
            endpoint="/api/v1/products/search",
            status_code=200,
            response_body={
                "products": [{"id": "mouse1", "name": "Pro Gaming Mouse", "price": 45.99}]
            },
            response_time_ms=150,
        ).dict(),
    )
    e["tool_response"] = Event(
        run_id=run_id,
        user_id=user_id,
        event_type=EventType.TOOL_RESPONSE,
        parent_event_id=e["search_tool"].event_id,
        payload=ToolResponsePayload(
            tool_name="product_search",
            tool_type="api",
            call_id=e["search_tool"].payload["call_id"],
            response_data={
                "products": [{"id": "mouse1", "name": "Pro Gaming Mouse", "price": 45.99}]
            },
            execution_time_ms=200,
            success=True,
        ).dict(),
    )
    e["llm_request"] = Event(
        run_id=run_id,
        user_id=user_id,
        event_type=EventType.LLM_REQUEST,
        parent_event_id=e["tool_response"].event_id,
        payload=LLMRequestPayload(
            model_name="gpt-4",
            provider="openai",
            prompt="Compare these gaming mice and recommend the best one: [product details]",
            parameters={"temperature": 0.7, "max_tokens": 150},
        ).dict(),
    )
    e["llm_chunk"] = Event(
        run_id=run_id,
        user_id=user_id,
        event_type=EventType.LLM_STREAMING_CHUNK,
        parent_event_id=e["llm_request"].event_id,
        payload=LLMStreamingChunkPayload(
            model_name="gpt-4",
            provider="openai",
            chunk_text="Based on the specifications, I recommend the Pro Gaming Mouse",
            chunk_index=0,
            is_final=False,
        ).dict(),
    )
    e["llm_response"] = Event(
        run_id=run_id,
        user_id=user_id,
        event_type=EventType.LLM_RESPONSE,
        parent_event_id=e["llm_request"].event_id,
        payload=LLMResponsePayload(
            model_name="gpt-4",
            provider="openai",
            response_text="I recommend the Pro Gaming Mouse.",
            finish_reason="stop",
            usage={"prompt_tokens": 50, "completion_tokens": 30},
            response_time_ms=2500,
            cost=0.002,
        ).dict(),
    )
    e["agent_response"] = Event(
        run_id=run_id,
        user_id=user_id,
        event_type=EventType.AGENT_RESPONSE,
        parent_event_id=e["llm_response"].event_id,
        payload=AgentResponsePayload(
            response_text="I found two great options for you.",
            response_type="text",
            response_confidence=0.95,
            response_metadata={"recommended_product_id": "mouse1"},
        ).dict(),
    )
    e["cart_function"] = Event(
        run_id=run_id,
        user_id=user_id,
        event_type=EventType.FUNCTION_EXECUTION,
        parent_event_id=e["user_search"].event_id,
        payload=FunctionExecutionPayload(
            function_name="add_to_cart",
            function_args={"product_id": "mouse1", "quantity": 1},
            return_value={"success": True, "cart_total": 45.99},
            execution_time_ms=100,
            success=True,
        ).dict(),
    )
    e["performance"] = Event(
        run_id=run_id,
        user_id=user_id,
        event_type=EventType.PERFORMANCE_METRIC,
        parent_event_id=e["cart_function"].event_id,
        payload=PerformanceMetricPayload(
            metric_name="response_time",
            metric_value=3500,
            metric_unit="ms",
            metric_type="gauge",
            additional_metrics={"search_time": 200, "llm_time": 2500, "cart_time": 100},
        ).dict(),
    )
    e["user_feedback"] = Event(
        run_id=run_id,
        user_id=user_id,
        event_type=EventType.USER_FEEDBACK,
        parent_event_id=e["agent_response"].event_id,
        payload=UserFeedbackPayload(
            feedback_type="thumbs_up_down",
            feedback_value=True,
            target_event_id=e["agent_response"].event_id,
            feedback_text="Great recommendation!",
        ).dict(),
    )
    e["session_end"] = Event(
        run_id=run_id,
        user_id=user_id,
        event_type=EventType.SESSION_END,
        parent_event_id=e["session_start"].event_id,
        payload=SessionEndPayload(
            session_id=session_id,
            session_duration_ms=5000,
            session_summary={"products_viewed": 2, "products_added": 1, "total_spent": 45.99},
            exit_reason="completed",
        ).dict(),
    )
    e["validation_error"] = Event(
        run_id=run_id,
        user_id=user_id,
        event_type=EventType.VALIDATION_ERROR,
        parent_event_id=e["user_search"].event_id,
        payload=ValidationErrorPayload(
            validation_target="product_id",
            validation_rules=["exists", "in_stock"],
            failed_rules=["exists"],
            validation_details={"provided_id": "invalid_id", "available_ids": ["mouse1", "mouse2"]},
        ).dict(),
    )
    e["timeout_error"] = Event(
        run_id=run_id,
        user_id=user_id,
        event_type=EventType.TIMEOUT_ERROR,
        parent_event_id=e["api_request"].event_id,
        payload=TimeoutErrorPayload(
            timeout_type="api_call",
            timeout_duration_ms=5000,
            expected_duration_ms=1000,
            operation_context={
                "api_name": "product_catalog",
                "endpoint": "/api/v1/products/search",
            },
        ).dict(),
    )
    e["chain_start"] = Event(
        run_id=run_id,
        user_id=user_id,
        event_type=EventType.CHAIN_START,
        parent_event_id=e["agent_reasoning"].event_id,
        payload=ChainStartPayload(
            chain_name="product_comparison",
            inputs={"products": ["mouse1", "mouse2"]},
            parameters={"comparison_type": "specifications"},
            chain_type="sequential",
            chain_metadata={"purpose": "help_user_decide"},
        ).dict(),
    )
    e["chain_end"] = Event(
        run_id=run_id,
        user_id=user_id,
        event_type=EventType.CHAIN_END,
        parent_event_id=e["chain_start"].event_id,
        payload=ChainEndPayload(
            chain_name="product_comparison",
            outputs={"recommended_product": "mouse1"},
            execution_time_ms=300,
            chain_type="sequential",
        ).dict(),
    )
    for event in e.values():
        client.log_event(event)
    client.end_run(run_id)
    return e


# -- examples/crewai_example.py: the handler calls (the crew itself needs CrewAI) ----------


class MockResponse:
    def __init__(self):
        self.choices = [MockChoice()]
        self.usage = MockUsage()


class MockChoice:
    def __init__(self):
        self.message = MockMessage()
        self.finish_reason = "stop"


class MockMessage:
    def __init__(self):
        self.content = "Hello! How can I help you today?"


class MockUsage:
    def __init__(self):
        self.prompt_tokens = 10
        self.completion_tokens = 15
        self.total_tokens = 25


def crewai_callback_calls(callback_handler) -> None:
    """test_callback_integration's calls on the handler, with dicts for the crew objects."""
    agents = [
        {"role": "Research Analyst", "goal": "Gather and analyze information", "backstory": "..."},
        {"role": "Content Writer", "goal": "Create engaging content", "backstory": "..."},
    ]
    tasks = [
        {
            "description": "Research AI agents",
            "expected_output": "A report",
            "agent": "Research Analyst",
        }
    ]
    callback_handler.on_crew_start({"name": "crew", "agent_count": 2, "task_count": 1})
    for agent in agents:
        callback_handler.on_agent_start(agent["role"], agent)
        callback_handler.on_agent_end(agent["role"], {"result": f"Agent {agent['role']} completed"})
    for index, task in enumerate(tasks):
        callback_handler.on_task_start(f"task_{index}", task)
        callback_handler.on_task_end(f"task_{index}", {"result": "Task completed successfully"})
    tool_call_id = callback_handler.on_tool_start(
        "Calculator", "2 + 2", {"context": "testing", "tool_type": "calculator"}
    )
    callback_handler.on_tool_end(tool_call_id, {"result": "4", "success": True})
    callback_handler.log_pre_api_call(
        model="gpt-4",
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Hello, world!"},
        ],
        kwargs={"temperature": 0.7, "max_tokens": 100, "metadata": {"purpose": "testing"}},
    )
    callback_handler.log_post_api_call(
        kwargs={"model": "gpt-4"},
        response_obj=MockResponse(),
        start_time=time.time() - 1,
        end_time=time.time(),
    )
    callback_handler.on_error(
        ValueError("Test error"), {"context": "testing error handling", "error_code": "TEST_ERROR"}
    )
    callback_handler.log_custom_event(
        "test_event", {"message": "This is a custom test event", "value": 42}
    )
    callback_handler.on_crew_end({"name": "crew"}, "Crew execution completed successfully")
    callback_handler.flush_events()


# -- examples/langchain_example.py: its three flows (``langchain.schema`` is langchain-core's
# ``langchain_core.outputs`` now; the ``langchain`` package is not installed) ---------------


def langchain_example_flows(client) -> list[str]:
    from langchain_core.outputs import Generation, LLMResult

    from limelight.compat.insidellm import InsideLLMCallback

    runs = []
    # TestLLMCallbacks.test_basic_llm_flow
    callback = InsideLLMCallback(
        client=client,
        user_id=generate_uuid(),
        run_id=generate_uuid(),
        metadata={"test": "basic_llm_flow", "framework": "langchain", "test_type": "llm"},
    )
    run_id = generate_uuid()
    callback.on_llm_start(
        serialized={"name": "gpt-3.5-turbo", "_type": "openai", "metadata": {"model_type": "chat"}},
        prompts=["What is the capital of France?"],
        run_id=run_id,
        metadata={"system_message": "You are a helpful assistant.", "temperature": 0.7},
    )
    mock_result = LLMResult(
        generations=[[Generation(text="The capital of France is Paris.")]],
        llm_output={
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
            "finish_reason": "stop",
        },
    )
    callback.on_llm_end(response=mock_result, run_id=run_id, metadata={"response_time_ms": 1000})
    runs.append(callback.run_id)
    # TestToolCallbacks.test_tool_usage_flow
    callback = InsideLLMCallback(
        client=client,
        user_id=generate_uuid(),
        run_id=generate_uuid(),
        metadata={"test": "tool_flow"},
    )
    run_id = generate_uuid()
    callback.on_tool_start(
        serialized={"name": "calculator", "_type": "math_tool"},
        input_str="2 + 2",
        run_id=run_id,
        metadata={"context": "testing", "start_time": time.time()},
    )
    callback.on_tool_end(output="4", run_id=run_id, metadata={"execution_time_ms": 100})
    runs.append(callback.run_id)
    # TestChainCallbacks.test_chain_execution_flow
    callback = InsideLLMCallback(
        client=client,
        user_id=generate_uuid(),
        run_id=generate_uuid(),
        metadata={"test": "chain_flow"},
    )
    run_id = generate_uuid()
    callback.on_chain_start(
        serialized={"name": "qa_chain", "_type": "sequential"},
        inputs={"question": "What is the capital of France?", "context": "This is a test context."},
        run_id=run_id,
        metadata={"start_time": time.time()},
        tags="test,qa",
    )
    callback.on_chain_end(
        outputs={"answer": "The capital of France is Paris.", "confidence": 0.95},
        run_id=run_id,
        metadata={"execution_time_ms": 1000},
    )
    runs.append(callback.run_id)
    return runs
